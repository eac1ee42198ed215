"""Image statistics and the distribution distance, against naive code and SciPy."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
from scipy import stats as scipy_stats

from klugerhans.data.synthetic.statistics import STATISTICS, distribution_distance, image_statistics, quantiles


def _naive(image: np.ndarray) -> dict[str, float]:
    h, w, _ = image.shape
    x = image.astype(float) / 255
    y = [[0.299 * x[i, j, 0] + 0.587 * x[i, j, 1] + 0.114 * x[i, j, 2] for j in range(w)] for i in range(h)]
    flat = [v for row in y for v in row]
    mean = sum(flat) / len(flat)
    std = (sum((v - mean) ** 2 for v in flat) / len(flat)) ** 0.5
    sat = sum(colorsys.rgb_to_hsv(*x[i, j])[1] for i in range(h) for j in range(w)) / (h * w)
    lap = [
        abs(4 * y[i][j] - y[i - 1][j] - y[i + 1][j] - y[i][j - 1] - y[i][j + 1])
        for i in range(1, h - 1)
        for j in range(1, w - 1)
    ]
    return {"brightness": mean, "contrast": std, "saturation": sat, "sharpness": sum(lap) / len(lap) / (std + 1e-3)}


def test_statistics_match_naive_per_pixel_code():
    images = np.random.default_rng(0).integers(0, 256, (5, 7, 6, 3), dtype=np.uint8)
    images[1] = 0  # all black: saturation 0, no contrast
    images[2, :, :, :] = images[2, :, :, :1]  # grey
    got = image_statistics(images)
    assert list(got) == list(STATISTICS)
    for k, image in enumerate(images):
        for name, value in _naive(image).items():
            assert got[name][k] == pytest.approx(value, abs=1e-5), (k, name)
    assert got["saturation"][1] == 0 and got["saturation"][2] == pytest.approx(0, abs=1e-6)


def test_blur_lowers_sharpness_but_not_brightness():
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    blurred = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(1.5)))
    s = image_statistics(np.stack([image, blurred]))
    assert s["sharpness"][1] < 0.5 * s["sharpness"][0]
    assert s["brightness"][1] == pytest.approx(s["brightness"][0], abs=0.02)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="N, H, W, 3"):
        image_statistics(np.zeros((2, 32, 32), dtype=np.uint8))


def test_distance_is_the_two_sample_kolmogorov_smirnov_statistic():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, 300), rng.normal(0.3, 1.2, 500)
    assert distribution_distance(a, b) == pytest.approx(scipy_stats.ks_2samp(a, b).statistic)
    assert distribution_distance(a, a) == 0.0
    assert distribution_distance(a, a + 100) == 1.0


def test_distance_to_stored_quantiles_approximates_the_distance_to_the_sample():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 400), rng.normal(0.5, 1, 20000)
    exact = scipy_stats.ks_2samp(a, b).statistic
    assert distribution_distance(a, quantiles(b), reference_is_quantiles=True) == pytest.approx(exact, abs=0.02)
    # Against its own distribution a sample is close; against a shifted one it is far.
    assert distribution_distance(b[:2000], quantiles(b), reference_is_quantiles=True) < 0.05
    assert distribution_distance(b + 10, quantiles(b), reference_is_quantiles=True) == 1.0
    with pytest.raises(ValueError, match="at least one"):
        distribution_distance(np.zeros(0), b)


def test_the_histogram_figure_is_written_and_needs_every_statistic(tmp_path):
    from klugerhans.data.synthetic.sheets import save_statistics_figure
    from klugerhans.errors import KlugerhansError

    rng = np.random.default_rng(4)
    real = {name: rng.random(200) for name in STATISTICS}
    synthetic = {name: rng.random(100) for name in STATISTICS}
    path = save_statistics_figure(tmp_path / "h.png", real, synthetic, real_label="real")
    assert path.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(KlugerhansError, match="missing for the figure: sharpness"):
        save_statistics_figure(tmp_path / "x.png", {k: v for k, v in real.items() if k != "sharpness"}, synthetic)
    assert not (tmp_path / "x.png").exists()
