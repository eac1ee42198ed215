"""LXT (Achtibat et al. 2024, ``pip install --no-deps lxt``) as the reference for LRP on torchvision transformers.

LXT is installed without its dependencies (they pull in transformers and bitsandbytes), so its package ``__init__``
files, which import every model family, are skipped: only ``lxt.efficient.patches`` and ``lxt.efficient.rules`` and
``lxt.efficient.zennit_patches`` load, and the patch map is the one of ``lxt.efficient.models.vit_torch`` (``cp_LRP``:
the identity rule on GELU, LayerNorm's standard deviation held, queries and keys detached). LXT patches torch's
classes for the whole process: use it in a process of its own, or last.
"""

from __future__ import annotations

import copy
import importlib.util
import sys
import types
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch


def patch_torch_for_lxt() -> None:
    """Load LXT's efficient patches and apply its torchvision-ViT map and its zennit patch (once per process)."""
    if getattr(patch_torch_for_lxt, "done", False):
        return
    spec = importlib.util.find_spec("lxt")
    if spec is None or spec.submodule_search_locations is None:
        raise SystemExit("lxt is not installed: pip install --no-deps lxt")
    root = Path(next(iter(spec.submodule_search_locations)))
    for name, folder in (("lxt", root), ("lxt.efficient", root / "efficient")):
        package = types.ModuleType(name)
        package.__path__ = [str(folder)]
        sys.modules[name] = package
    import lxt.efficient.patches as patches
    import lxt.efficient.zennit_patches as zennit_patches
    from torchvision.models import vision_transformer

    for target, patch in {
        vision_transformer.nn.GELU: partial(patches.patch_method, patches.non_linear_forward, keep_original=True),
        vision_transformer.nn.LayerNorm: partial(patches.patch_method, patches.layer_norm_forward),
        vision_transformer.nn.MultiheadAttention: partial(
            patches.patch_method, patches.cp_multi_head_attention_forward, keep_original=True
        ),
    }.items():
        assert patch(target), f"LXT could not patch {target.__name__}"
    zennit_patches.monkey_patch_zennit()
    patch_torch_for_lxt.done = True  # type: ignore[attr-defined]


def lxt_attributor(model: torch.nn.Module, composite: object) -> Callable[..., torch.Tensor]:
    """``fn(x, target=None) -> x * grad``: LXT's relevance of ``target`` (default: the predicted class) on a copy of
    ``model``; ``composite`` is a zennit composite name or a zennit rule for every conv and dense layer."""
    patch_torch_for_lxt()
    from zennit.composites import COMPOSITES, LayerMapComposite

    model = copy.deepcopy(model).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if isinstance(composite, str):
        zennit_composite = COMPOSITES[composite]()
    else:
        zennit_composite = LayerMapComposite([(torch.nn.Conv2d, composite), (torch.nn.Linear, composite)])
    zennit_composite.register(model)

    def attribute(x: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        x = x.detach().clone().requires_grad_(True)
        logits = model(x)
        chosen = logits.argmax(1) if target is None else target
        logits.gather(1, chosen[:, None]).sum().backward()
        attribute.logits = logits.detach()  # type: ignore[attr-defined]
        return (x * x.grad).detach()

    return attribute
