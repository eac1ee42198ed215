"""Sanity check by model parameter randomisation (Adebayo et al. 2018, "Sanity checks for saliency maps").

An explanation that stays the same when the model's weights are replaced by random ones cannot be explaining what
the model learned. Layers with parameters (conv, linear) are re-initialised either *cascading* (from the output
layer down, keeping earlier re-initialisations, so the model becomes more and more random) or *independently* (one
layer at a time, the rest trained). After each step the heatmaps of the same images and target classes are compared
with those of the trained model by Spearman rank correlation, of absolute values by default (as in the paper's main
figures). Faithful methods fall towards 0 quickly; an edge detector stays high.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Literal

import numpy as np
import torch
from torch import nn

from klugerhans.audit.methods import MethodOptions, attribute, make_attributor
from klugerhans.errors import KlugerhansError

__all__ = ["Mode", "parameter_layers", "randomized_models", "sanity_check", "spearman_rows"]

Mode = Literal["cascading", "independent"]


def parameter_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Conv and linear layers of ``model`` in registration (= forward, for VGG and Sequential) order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def _reinitialise(layer: nn.Module, seed: int) -> None:
    # reset_parameters draws from torch's global generator; fork it so the audit stays reproducible and the
    # caller's random state is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layer.reset_parameters()  # type: ignore[operator]


def randomized_models(model: nn.Module, mode: Mode = "cascading", seed: int = 0) -> Iterator[tuple[str, nn.Module]]:
    """Yield ``(layer name, randomised copy)`` from the output layer down; ``model`` itself is never changed.

    In cascading mode one copy is randomised further at every step, so build what you need from a yielded model
    before advancing the iterator.
    """
    if mode not in ("cascading", "independent"):
        raise KlugerhansError(f"randomisation must be 'cascading' or 'independent', got {mode!r}")
    names = [name for name, _ in parameter_layers(model)]
    if not names:
        raise KlugerhansError("the model has no conv or linear layers to randomise")
    cascade = copy.deepcopy(model).eval()
    for step, name in enumerate(reversed(names)):
        target = cascade if mode == "cascading" else copy.deepcopy(model).eval()
        _reinitialise(target.get_submodule(name), seed + step)
        yield name, target


def _ranks(a: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(a, axis=1)


def spearman_rows(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, absolute: bool = True) -> np.ndarray:
    """(N,) Spearman rank correlation between matching rows of two (N, ...) arrays (ties get average ranks).

    Rows without variation in either array get 0 (no rank information).
    """
    x = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    y = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    if x.shape != y.shape:
        raise KlugerhansError(f"cannot correlate heatmaps of shapes {x.shape} and {y.shape}")
    if absolute:
        x, y = np.abs(x), np.abs(y)
    rx, ry = _ranks(x), _ranks(y)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    denom = np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))
    return np.divide((rx * ry).sum(axis=1), denom, out=np.zeros(len(x)), where=denom > 0)


def sanity_check(
    model: nn.Module,
    methods: Sequence[str],
    x: torch.Tensor,
    targets: torch.Tensor,
    options: MethodOptions | None = None,
    mode: Mode = "cascading",
    absolute: bool = True,
    batch_size: int = 64,
    seed: int = 0,
) -> dict[str, dict[str, list]]:
    """Spearman correlation of each method's heatmaps before and after each randomisation step.

    Args:
        model: the trained classifier (not modified).
        methods: method names (see :mod:`klugerhans.audit.methods`).
        x: (N, 3, S, S) normalised images.
        targets: (N,) classes to explain (the same for every step).
        options: method settings.
        mode: "cascading" or "independent".
        absolute: correlate absolute values (True) or signed heatmaps.
        batch_size: images per attribution call.
        seed: seed of the re-initialisations.

    Returns:
        ``{method: {"layers": [names, output layer first], "spearman": [mean per step], "std": [...]}}``.
    """
    options = options or MethodOptions()
    original = {m: attribute(make_attributor(m, model, options), x, targets, batch_size).numpy() for m in methods}
    out: dict[str, dict[str, list]] = {m: {"layers": [], "spearman": [], "std": []} for m in methods}
    for step, (name, randomized) in enumerate(randomized_models(model, mode, seed)):
        # fresh noise per step: the random baseline must not correlate with itself by construction
        step_options = replace(options, seed=options.seed + 1 + step)
        for m in methods:
            maps = attribute(make_attributor(m, randomized, step_options), x, targets, batch_size).numpy()
            rho = spearman_rows(original[m], maps, absolute)
            out[m]["layers"].append(name)
            out[m]["spearman"].append(float(rho.mean()))
            out[m]["std"].append(float(rho.std()))
    return out
