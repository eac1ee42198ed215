"""The LRP engine: Layer-wise Relevance Propagation (Bach et al. 2015) of any classifier, and heatmap rendering.

Works on klugerhans' VGG and on torchvision CNNs (VGG, ResNet, ResNeXt, Wide ResNet, DenseNet, MobileNet V2/V3,
EfficientNet, RegNet, ConvNeXt): the model is traced op by op (``torch.fx``) into a canonized graph; and on
transformers (torchvision's ViT and Swin, timm's ViT, DeiT and Swin) with AttnLRP's rules (:mod:`.attention`).

A library of its own: it imports torch and the package's leaf modules (``errors``, ``io``, ``registry``), never a
dataset, a checkpoint or the audit (``tests/test_architecture.py`` checks it). It takes inputs already normalised;
a composite that needs the input's bounds gets them from the caller (``norm=(mean, std)`` or ``low``/``high``).

One entry point gives relevance, ``LRP(model, composite).attribute(x, target)``; every other caller in the package
ends up there. :func:`compute_heatmaps` is its one-call form, and :mod:`klugerhans.heatmaps` holds the conveniences
that know models and data (uint8 images, datasets, image files), thin wrappers over it.

>>> from klugerhans.explain import LRP, render_heatmap
>>> expl = LRP(model, "epsilon_plus_flat").attribute(x)  # x: (N, 3, H, W) normalised; the predicted class
>>> rgb = render_heatmap(expl.relevance[0], cmap="bwr")
"""

from __future__ import annotations

from klugerhans.explain.canonizers import canonize
from klugerhans.explain.composites import (
    COMPOSITES,
    Composite,
    InputNorm,
    box_bounds,
    get_composite,
    register_composite,
)
from klugerhans.explain.heatmap import CMAPS, overlay_heatmap, render_heatmap, save_png
from klugerhans.explain.lrp import LRP, Explanation, compute_heatmaps
from klugerhans.explain.modules import register_module_rule
from klugerhans.explain.rules import LRP0, AlphaBeta, Epsilon, Flat, Gamma, Norm, Propagator, Rule, WSquare, ZBox, ZPlus

__all__ = [
    "CMAPS",
    "COMPOSITES",
    "LRP",
    "LRP0",
    "AlphaBeta",
    "Composite",
    "Epsilon",
    "Explanation",
    "Flat",
    "Gamma",
    "InputNorm",
    "Norm",
    "Propagator",
    "Rule",
    "WSquare",
    "ZBox",
    "ZPlus",
    "box_bounds",
    "canonize",
    "compute_heatmaps",
    "get_composite",
    "overlay_heatmap",
    "register_composite",
    "register_module_rule",
    "render_heatmap",
    "save_png",
]
