"""Defaults that several layers and the command line share, stated once, in a module that imports nothing.

The LRP engine (which stands on its own), the models, the audit, the report, the demo and the command line's
``--help`` all read the same names from here, so no layer has to import another to learn a default.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULT_COMPOSITE", "DEFAULT_DATA", "DEFAULT_DEVICE", "DEFAULT_FALLBACK", "DEFAULT_FPR", "FIGURE_COMPOSITE"]

DEFAULT_DATA = "synthetic"
"""The dataset that training, the audit and the demo use unless told otherwise: synthetic signs, offline."""

DEFAULT_DEVICE = "auto"
"""The device every command runs on unless told otherwise: the first CUDA GPU, else Apple's MPS, else the CPU
(``klugerhans serve`` uses the CPU: a server shares the machine)."""

DEFAULT_FALLBACK: Final = "error"
"""What LRP does at an operation without a rule unless told otherwise: stop with an error naming it (``"gradient"``:
pass gradient x input through it)."""

DEFAULT_COMPOSITE = "epsilon_plus_flat"
"""The LRP composite every command and function uses unless told otherwise: the teaching case's EpsilonPlusFlat
(Flat first layer, z+ convolutions, epsilon dense layers)."""

FIGURE_COMPOSITE = "epsilon_gamma_box"
"""The composite of the teaching case's figure (``klugerhans demo``, ``klugerhans figure``, the LRP notebook). Not
:data:`DEFAULT_COMPOSITE`: on our VGG at 32 px its z+ rule leaves no negative relevance anywhere, with a 1x1, 2x2 or
4x4 map before the dense layers (``python tools/negative_relevance.py``, ``python tools/head_resolution.py``), so the
figure could not show what speaks against the class; gamma does, and puts two to four times as much of the positive
relevance into the sticker (docs/DEMO.md)."""

DEFAULT_FPR = 0.05
"""The false-positive rate a benchmark's detector thresholds aim at (``klugerhans bench --fpr``): 5% of clean models
flagged."""
