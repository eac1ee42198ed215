"""A fingerprint of the synthetic renderer: a changed rendering fails here instead of moving the demo's numbers.

The synthetic signs are drawn with Pillow (polygons, text, resampling, JPEG) and numpy, so a new release of either
can change pixels, and with them every number the demo and the docs report. The golden images were rendered with
the versions stored beside them (``versions`` in the file, also printed on failure). When a change is intended
or a new Pillow renders differently, re-measure the demo's numbers, then rewrite the golden file with

    KLUGERHANS_UPDATE_GOLDEN=1 python -m pytest tests/data/test_rendering_fingerprint.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import PIL

from klugerhans.data.synthetic.loader import render_signs

GOLDEN = Path(__file__).parent / "golden" / "synthetic_signs.npz"
LABELS = np.array([1, 2, 4, 9, 14, 25, 31, 38])
"""30, 50 and 70 km/h, no passing, stop, road work, wild animals, keep right: digits, pictograms, every shape."""


def _versions() -> dict[str, str]:
    import matplotlib  # its DejaVu font draws the pictograms' lettering

    return {"pillow": PIL.__version__, "numpy": np.__version__, "matplotlib": matplotlib.__version__}


def _render() -> dict[str, np.ndarray]:
    small, boxes = render_signs(LABELS, size=32, seed=0, split="train")
    large, _ = render_signs(LABELS[:3], size=64, seed=0, split="test")
    return {"small": small, "boxes": boxes, "large": large}


def test_synthetic_signs_render_exactly_as_recorded():
    rendered = _render()
    if os.environ.get("KLUGERHANS_UPDATE_GOLDEN"):
        np.savez_compressed(GOLDEN, versions=json.dumps(_versions()), **rendered)
    golden = np.load(GOLDEN)
    recorded = json.loads(str(golden["versions"]))
    for key, images in rendered.items():
        want = golden[key]
        assert images.shape == want.shape, key
        diff = np.abs(images.astype(np.float64) - want)
        assert np.array_equal(images, want), (
            f"the synthetic signs ({key}) render differently from the golden images recorded with {recorded}, now "
            f"{_versions()}: {np.mean(diff > 0):.2%} of values differ, by {diff.mean():.3f} levels on average "
            f"(at most {diff.max():.0f}). Re-measure the demo's numbers, then update the golden file (see the module)."
        )
