"""Explain classifier decisions with Layer-wise Relevance Propagation (Bach et al. 2015) and render heatmaps.

Works on klugerhans' VGG and on torchvision CNNs (VGG, ResNet, ResNeXt, Wide ResNet, DenseNet, MobileNet V2/V3,
EfficientNet, RegNet, ConvNeXt): the model is traced op by op (``torch.fx``) into a canonized graph; and on
transformers (torchvision's ViT and Swin, timm's ViT, DeiT and Swin) with AttnLRP's rules (:mod:`.attention`).

>>> from klugerhans.explain import compute_heatmaps, render_heatmap
>>> expl = compute_heatmaps(model, x)                 # epsilon_plus_flat, predicted class
>>> rgb = render_heatmap(expl.relevance[0], cmap="bwr")
"""

from __future__ import annotations

from klugerhans.explain.api import explain_model, model_inputs
from klugerhans.explain.canonizers import canonize
from klugerhans.explain.composites import COMPOSITES, Composite, box_bounds, get_composite, register_composite
from klugerhans.explain.heatmap import CMAPS, overlay_heatmap, render_heatmap, save_png
from klugerhans.explain.lrp import LRP, Explanation, compute_heatmaps, explain_dataset
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
    "Norm",
    "Propagator",
    "Rule",
    "WSquare",
    "ZBox",
    "ZPlus",
    "box_bounds",
    "canonize",
    "compute_heatmaps",
    "explain_dataset",
    "explain_model",
    "get_composite",
    "model_inputs",
    "overlay_heatmap",
    "register_composite",
    "register_module_rule",
    "render_heatmap",
    "save_png",
]
