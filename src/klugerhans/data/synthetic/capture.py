"""GTSRB's capture chain, measured: how large the real crops were, their border, and the loader's crop.

A real GTSRB image went through four steps, and a synthetic sign goes through the same ones
(:func:`klugerhans.data.synthetic.rendering.compose_frame`):

1. a video camera saw the sign box (ROI) ``r`` pixels wide, 15 to 250 px, most of them small;
2. the INI release cut the ROI with a border of 10% of its size, at least 5 px (measured on the CSVs: the
   border is ``max(5, 0.1 r) + 0.5`` px within a pixel for 95% of the training images), so the file is
   ``W = r + 2 border`` px wide;
3. the copy in ``../shared/gtsrb`` was downscaled to 32 x 32 by a third party (a file of small signs was
   upscaled);
4. :func:`klugerhans.data.gtsrb.loader.sign_geometry` crops the ROI plus a 10% margin out of that file and
   resamples it to the model size: a second resampling, a zoom by ``W / 1.2 r`` (up to 1.25 for small signs),
   that softens every real image a model sees (measured on 3,000 training files: the mean absolute Laplacian of
   the luminance, over its standard deviation, falls from a median 0.66 in the files to 0.48 after the crop).

The distribution of ``r`` is kept as quantiles in ``capture.json`` next to this module, with quantiles of the
image statistics (:mod:`klugerhans.data.synthetic.statistics`) of the real training crops as the loader makes
them, so that the renderer's calibration can be checked without the dataset. ``tools/calibrate_synthetic.py``
writes the file from a GTSRB copy.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources

import numpy as np

from klugerhans.data.gtsrb.loader import DEFAULT_MARGIN as LOADER_MARGIN
from klugerhans.errors import KlugerhansError

__all__ = [
    "BORDER_MIN_PX",
    "BORDER_SHARE",
    "CAPTURE_FILE",
    "LOADER_MARGIN",
    "CaptureTable",
    "capture_table",
    "file_width",
    "roi_widths",
    "table_from_payload",
]

BORDER_MIN_PX = 5.0
"""Smallest border the INI release cut around a sign box, in camera pixels."""
BORDER_SHARE = 0.1
"""Border around a sign box as a share of its size, where that is more than :data:`BORDER_MIN_PX`."""
CAPTURE_FILE = "capture.json"


@dataclass(frozen=True)
class CaptureTable:
    """Measured distributions of real GTSRB training images (from ``capture.json``)."""

    roi_width_quantiles: np.ndarray
    """(Q,) ROI widths in camera pixels at evenly spaced probabilities 0..1 (the inverse CDF)."""
    reference: dict[str, np.ndarray]
    """Image statistic name -> (Q,) quantiles over the real training crops the loader makes (32 px)."""
    source: str
    """Where the numbers come from (the dataset and the command)."""

    def __post_init__(self) -> None:
        q = self.roi_width_quantiles
        if q.ndim != 1 or len(q) < 2 or np.any(np.diff(q) < 0) or q[0] <= 0:
            raise KlugerhansError("capture table: ROI width quantiles must be positive and non-decreasing")

    def roi_width(self, u: float) -> float:
        """The ROI width (camera pixels) at probability ``u`` in [0, 1]: linear between the stored quantiles."""
        q = self.roi_width_quantiles
        return float(np.interp(u, np.linspace(0.0, 1.0, len(q)), q))


def file_width(roi_width: float) -> float:
    """Width of a GTSRB file around a sign box of ``roi_width`` camera pixels (step 2 of the chain)."""
    return roi_width + 2.0 * (max(BORDER_MIN_PX, BORDER_SHARE * roi_width) + 0.5)


@functools.cache
def capture_table() -> CaptureTable:
    """The table shipped with the package (``capture.json``), read once."""
    text = resources.files("klugerhans.data.synthetic").joinpath(CAPTURE_FILE).read_text(encoding="utf-8")
    return table_from_payload(json.loads(text))


def table_from_payload(payload: dict) -> CaptureTable:
    """A :class:`CaptureTable` from the JSON payload ``tools/calibrate_synthetic.py`` writes."""
    try:
        return CaptureTable(
            roi_width_quantiles=np.asarray(payload["roi_width_quantiles"], dtype=np.float64),
            reference={k: np.asarray(v, dtype=np.float64) for k, v in payload["reference"].items()},
            source=str(payload["source"]),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise KlugerhansError(
            f"capture table is malformed ({err}); regenerate it with tools/calibrate_synthetic.py"
        ) from None


def roi_widths(roi: np.ndarray) -> np.ndarray:
    """ROI widths of ``(N, 4)`` boxes ``(x0, y0, x1, y1)`` (x1 exclusive), as floats."""
    roi = np.asarray(roi, dtype=np.float64).reshape(-1, 4)
    return roi[:, 2] - roi[:, 0]
