"""Synthetic GTSRB-like signs: sign templates, pictograms, scenes, rendering and contact sheets.

Importing this package registers the ``"synthetic"`` dataset (no download, all 43 classes).
"""

from klugerhans.data.synthetic.loader import SyntheticConfig, load_synthetic, render_sign, render_signs

__all__ = ["SyntheticConfig", "load_synthetic", "render_sign", "render_signs"]
