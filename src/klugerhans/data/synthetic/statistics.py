"""Per-image statistics that say how an image set looks, to calibrate synthetic signs against real GTSRB.

Four numbers per image, each on the luminance ``Y = 0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601) or the colours
on the 0..1 scale:

- ``brightness``: mean of Y (exposure);
- ``contrast``: standard deviation of Y (RMS contrast);
- ``saturation``: mean of ``(max - min) / max`` over the pixels (HSV saturation; 0 for grey);
- ``sharpness``: mean absolute 4-neighbour Laplacian of Y over the inner pixels, divided by the contrast
  (+ 0.001): how much of the contrast sits in the finest detail, which blur, low resolution and the loader's
  second resampling all remove.

Sets are compared by the Kolmogorov-Smirnov distance between their distributions (the largest gap between
the two CDFs, 0 to 1), one per statistic. The real side may be given as stored quantiles
(:class:`klugerhans.data.synthetic.capture.CaptureTable.reference`), so the comparison runs without the dataset.
"""

from __future__ import annotations

import numpy as np

__all__ = ["STATISTICS", "distribution_distance", "image_statistics", "quantiles"]

STATISTICS: tuple[str, ...] = ("brightness", "contrast", "saturation", "sharpness")
"""Names of the statistics, in the order :func:`image_statistics` returns them."""
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_CHUNK = 4096


def image_statistics(images: np.ndarray) -> dict[str, np.ndarray]:
    """The four statistics of each image.

    Args:
        images: (N, H, W, 3) uint8 RGB, H and W at least 3.

    Returns:
        name -> (N,) float64, for each name in :data:`STATISTICS`.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or min(images.shape[1:3]) < 3:
        raise ValueError(f"expected (N, H, W, 3) images of at least 3x3 pixels, got shape {images.shape}")
    out: dict[str, list[np.ndarray]] = {name: [] for name in STATISTICS}
    for start in range(0, len(images), _CHUNK):
        x = images[start : start + _CHUNK].astype(np.float32) / np.float32(255.0)
        y = x @ _LUMA
        contrast = y.std(axis=(1, 2))
        hi, lo = x.max(axis=-1), x.min(axis=-1)
        saturation = np.where(hi > 0, (hi - lo) / np.maximum(hi, 1e-6), 0.0).mean(axis=(1, 2))
        inner = y[:, 1:-1, 1:-1]
        lap = 4 * inner - y[:, :-2, 1:-1] - y[:, 2:, 1:-1] - y[:, 1:-1, :-2] - y[:, 1:-1, 2:]
        out["brightness"].append(y.mean(axis=(1, 2)))
        out["contrast"].append(contrast)
        out["saturation"].append(saturation)
        out["sharpness"].append(np.abs(lap).mean(axis=(1, 2)) / (contrast + 1e-3))
    return {name: np.concatenate(v).astype(np.float64) if v else np.zeros(0) for name, v in out.items()}


def quantiles(values: np.ndarray, count: int = 101) -> np.ndarray:
    """(count,) quantiles of ``values`` at evenly spaced probabilities 0..1 (linear interpolation)."""
    return np.quantile(np.asarray(values, dtype=np.float64), np.linspace(0.0, 1.0, count))


def distribution_distance(sample: np.ndarray, reference: np.ndarray, *, reference_is_quantiles: bool = False) -> float:
    """Kolmogorov-Smirnov distance between ``sample`` and ``reference`` (0: same distribution, 1: disjoint).

    Args:
        sample: (N,) values.
        reference: (M,) values, or (Q,) quantiles at evenly spaced probabilities 0..1 when
            ``reference_is_quantiles`` (the reference CDF is then linear between them).
    """
    sample = np.sort(np.asarray(sample, dtype=np.float64))
    reference = np.asarray(reference, dtype=np.float64)
    if len(sample) == 0 or len(reference) == 0:
        raise ValueError("both sets need at least one value")
    if reference_is_quantiles:
        probs = np.linspace(0.0, 1.0, len(reference))
        # The CDF at each sample value, on both sides of the jump the sample's own step makes there.
        ref_cdf = np.interp(sample, reference, probs, left=0.0, right=1.0)
        n = len(sample)
        above = np.arange(1, n + 1) / n - ref_cdf
        below = ref_cdf - np.arange(0, n) / n
        return float(max(above.max(), below.max(), 0.0))
    grid = np.concatenate([sample, reference])
    f_sample = np.searchsorted(sample, grid, side="right") / len(sample)
    f_ref = np.searchsorted(np.sort(reference), grid, side="right") / len(reference)
    return float(np.abs(f_sample - f_ref).max())
