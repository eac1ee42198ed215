"""Synthetic GTSRB-like signs: sign templates, pictograms, digits, scenes, GTSRB's capture chain, rendering, image
statistics for calibration, contact sheets.

Importing this package registers the ``"synthetic"`` dataset (no download, all 43 classes).
"""

from klugerhans.data.synthetic.capture import capture_table
from klugerhans.data.synthetic.loader import SyntheticConfig, load_synthetic, render_sign, render_signs
from klugerhans.data.synthetic.statistics import image_statistics

__all__ = ["SyntheticConfig", "capture_table", "image_statistics", "load_synthetic", "render_sign", "render_signs"]
