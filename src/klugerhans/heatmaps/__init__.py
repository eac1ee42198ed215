"""Heatmaps of a classifier's images: the conveniences over the LRP engine that know models and data.

The engine (:mod:`klugerhans.explain`) takes normalised tensors and gives relevance through one verb,
``LRP(model, composite).attribute(x, target)``; everything here is a thin wrapper that prepares its inputs:
uint8 images normalised (:func:`explain_model`, :func:`model_inputs`), a dataset streamed batch by batch with
reduced maps (:func:`explain_dataset`), image files read and preprocessed as the classifier was trained, with PNGs
written (:func:`explain_files`).

>>> from klugerhans.heatmaps import explain_model
>>> expl = explain_model(model, images, norm=Normalization(mean, std))  # images: (N, H, W, 3) uint8
"""

from __future__ import annotations

from klugerhans.heatmaps.api import explain_model, model_inputs
from klugerhans.heatmaps.dataset import explain_dataset
from klugerhans.heatmaps.files import explain_files

__all__ = ["explain_dataset", "explain_files", "explain_model", "model_inputs"]
