"""GTSRB's capture chain in the renderer: the measured table, the border rule and the loader's crop."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from klugerhans.data.gtsrb.loader import DEFAULT_MARGIN, sign_geometry
from klugerhans.data.images import resize_square
from klugerhans.data.synthetic.capture import (
    BORDER_MIN_PX,
    LOADER_MARGIN,
    capture_table,
    file_width,
    roi_widths,
    table_from_payload,
)
from klugerhans.data.synthetic.loader import SyntheticConfig, render_signs
from klugerhans.data.synthetic.rendering import crop_like_loader, draw_frame, draw_sign
from klugerhans.data.synthetic.statistics import STATISTICS, distribution_distance, image_statistics, quantiles
from klugerhans.errors import KlugerhansError


def test_the_border_rule_is_the_release_notes_ten_percent_at_least_five_pixels():
    # Stallkamp et al.: a 10% border around the sign, at least 5 px; +0.5 px per side as measured on the CSVs.
    assert file_width(20.0) == pytest.approx(20 + 2 * 5.5)
    assert file_width(100.0) == pytest.approx(100 + 2 * 10.5)
    assert file_width(50.0) == pytest.approx(50 + 2 * (BORDER_MIN_PX + 0.5))
    assert LOADER_MARGIN == DEFAULT_MARGIN


def test_the_shipped_table_is_a_sane_size_distribution():
    table = capture_table()
    q = table.roi_width_quantiles
    assert len(q) == 101 and np.all(np.diff(q) >= 0)
    assert 10 <= q[0] <= 20 and 150 <= q[-1] <= 300 and 25 <= q[50] <= 45  # GTSRB: 15..250 px, mostly small
    assert table.roi_width(0.0) == q[0] and table.roi_width(1.0) == q[-1]
    assert table.roi_width(0.5) == pytest.approx(q[50])
    assert table.roi_width(0.505) == pytest.approx((q[50] + q[51]) / 2)
    assert set(table.reference) == set(STATISTICS) and "tools/calibrate_synthetic.py" in table.source


def test_a_malformed_table_is_a_one_line_error():
    with pytest.raises(KlugerhansError, match=r"regenerate it with tools/calibrate_synthetic\.py"):
        table_from_payload({"roi_width_quantiles": [1, 2]})
    with pytest.raises(KlugerhansError, match="non-decreasing"):
        table_from_payload({"roi_width_quantiles": [3, 2], "reference": {}, "source": "x"})


def test_the_table_matches_the_real_csvs(gtsrb_dir):
    from klugerhans.data.gtsrb.layouts import find_layout

    _, annotations = find_layout(gtsrb_dir).read_annotations("train")
    rois = roi_widths(np.array([a.roi for a in annotations]))
    np.testing.assert_allclose(capture_table().roi_width_quantiles, quantiles(rois), atol=0.01)
    widths = np.array([a.width for a in annotations], dtype=float)
    assert np.mean(np.abs(np.array([file_width(r) for r in rois]) - widths) <= 1) >= 0.9


def test_synthetic_frames_are_cut_out_of_their_file_as_the_loader_cuts_real_ones():
    config = SyntheticConfig()
    rng = np.random.default_rng(3)
    frame = draw_frame(draw_sign(rng, config), rng, 0, config)
    x0, y0, x1, y1 = frame.window
    assert 0 < x0 < 0.5 < x1 < 1 and x1 - x0 == pytest.approx(y1 - y0)
    file = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    # The window is the ROI plus the loader's margin: give the loader that ROI and it crops the same pixels.
    side = (x1 - x0) * 32 / (1 + 2 * DEFAULT_MARGIN)
    roi = (x0 * 32 + DEFAULT_MARGIN * side, y0 * 32 + DEFAULT_MARGIN * side)
    crop, _ = sign_geometry((*roi, roi[0] + side, roi[1] + side), (32, 32), (32, 32), DEFAULT_MARGIN, 32)  # type: ignore[arg-type]
    np.testing.assert_array_equal(crop_like_loader(file, frame), resize_square(Image.fromarray(file), 32, crop))


def test_without_blur_the_file_is_the_crop():
    config = SyntheticConfig(blur=0.0)
    rng = np.random.default_rng(3)
    frame = draw_frame(draw_sign(rng, config), rng, 0, config)
    file = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert frame.window == (0.0, 0.0, 1.0, 1.0) and crop_like_loader(file, frame) is file


def test_later_frames_of_a_track_come_closer():
    config = SyntheticConfig()
    sign = dataclasses.replace(draw_sign(np.random.default_rng(1), config), distance=0.3, approach=0.05)
    widths = [draw_frame(sign, np.random.default_rng(step), step, config).resolution for step in range(5)]
    assert widths == sorted(widths) and widths[-1] > widths[0]


def test_the_second_resampling_softens_the_signs(monkeypatch):
    import klugerhans.data.synthetic.loader as loader

    labels = np.arange(43).repeat(3)
    config = SyntheticConfig(noise=0.0, jpeg=0.0)
    crops, _ = render_signs(labels, 32, seed=1, config=config)
    # The same frames, left as their files (no loader crop), keep more of their finest detail.
    monkeypatch.setattr(loader, "crop_like_loader", lambda file, frame: file)
    files, _ = render_signs(labels, 32, seed=1, config=config)
    soft, sharp = image_statistics(crops)["sharpness"], image_statistics(files)["sharpness"]
    assert np.median(sharp) > 1.1 * np.median(soft)


def test_default_synthetic_signs_look_like_gtsrb_by_the_stored_statistics():
    """The calibration holds: every statistic's KS distance to the real training crops stays small.

    On the default dataset (seed 0, 8,600 images; docs/SYNTHETIC.md): brightness 0.033, contrast 0.064, saturation
    0.135, sharpness 0.053; the renderer before the calibration and the loader's crop had saturation 0.27 and
    sharpness 0.18. This test renders other images (40 test signs per class), so its distances differ a little.
    """
    config = SyntheticConfig()
    labels = np.arange(43).repeat(40)
    images, _ = render_signs(labels, 32, seed=0, split="test", config=config)
    stats = image_statistics(images)
    reference = capture_table().reference
    for name in STATISTICS:
        assert distribution_distance(stats[name], reference[name], reference_is_quantiles=True) < 0.2, name
