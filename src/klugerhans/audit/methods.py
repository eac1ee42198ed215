"""Attribution methods behind one interface, so every metric compares them on exactly the same images.

A method is built once per model by :func:`make_attributor` and then called batch by batch:
``attributor(x, targets) -> (N, H, W)`` relevance, summed over colour channels (signed, as LRP's). Names:

* ``lrp:<composite>``: our LRP engine (:class:`klugerhans.explain.LRP`) with a registered composite, e.g.
  ``lrp:epsilon_plus_flat`` (Bach et al. 2015; Montavon et al. 2019).
* ``gradient``: the signed input gradient of the target logit (Simonyan et al. 2014), captum ``Saliency(abs=False)``.
* ``gradient_x_input``: gradient times input (Shrikumar et al. 2016), captum ``InputXGradient``.
* ``integrated_gradients``: Sundararajan et al. 2017, captum ``IntegratedGradients`` from the all-zero normalised
  input (the training-set mean image).
* ``smoothgrad``: Smilkov et al. 2017, captum ``NoiseTunnel(Saliency)``, noise 15% of the input range.
* ``grad_cam``: Selvaraju et al. 2017, captum ``LayerGradCam`` on the last feature map at least 1/8 of the input
  side (4x4 on a 32 px VGG11: the last conv map, 2x2, is too coarse to localise anything), bilinearly upsampled.
* ``occlusion``: Zeiler & Fergus 2014, captum ``Occlusion``, non-overlapping windows of 1/8 of the image side
  filled with zeros (the mean image): 64 forward passes per image.
* ``random``: Gaussian noise, the floor every method should beat.

Gradient methods run on a private copy of the model (in-place ReLUs disabled, parameters frozen), so the user's
model is never touched.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from klugerhans.defaults import DEFAULT_FALLBACK
from klugerhans.errors import KlugerhansError
from klugerhans.explain.composites import COMPOSITES, Fallback, get_composite
from klugerhans.explain.lrp import LRP
from klugerhans.models.preprocess import Normalization, to_tensor
from klugerhans.registry import Registry

__all__ = [
    "DEFAULT_METHODS",
    "METHODS",
    "Attributor",
    "MethodOptions",
    "attribute",
    "available_methods",
    "check_methods",
    "make_attributor",
    "register_method",
]

Attributor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``(x (N, 3, H, W) normalised, targets (N,) int64) -> (N, H, W)`` float32 relevance on the CPU."""

DEFAULT_METHODS: tuple[str, ...] = (
    "lrp:epsilon_plus_flat",
    "lrp:epsilon_gamma_box",
    "lrp:epsilon_alpha2_beta1_flat",
    "gradient",
    "gradient_x_input",
    "integrated_gradients",
    "smoothgrad",
    "grad_cam",
    "occlusion",
    "random",
)
"""Methods the audit compares by default."""


@dataclass(frozen=True)
class MethodOptions:
    """Settings shared by the attribution methods."""

    norm: Normalization = field(default_factory=Normalization)
    """Input normalisation of the model (sets the LRP box bounds and the SmoothGrad noise scale)."""
    ig_steps: int = 32
    """Integration steps of Integrated Gradients."""
    smoothgrad_samples: int = 16
    """Noisy copies per image for SmoothGrad."""
    smoothgrad_noise: float = 0.15
    """SmoothGrad noise standard deviation as a share of the input range (Smilkov et al. suggest 10-20%)."""
    occlusion_window: float = 0.125
    """Occlusion window side as a share of the image side (4 px at 32 px)."""
    internal_batch_size: int = 256
    """Largest batch captum sends through the model at once (IG steps, SmoothGrad samples, occlusions)."""
    seed: int = 0
    """Seed of the random baseline and the SmoothGrad noise."""
    fallback: Fallback = DEFAULT_FALLBACK
    """LRP methods: "gradient" propagates through operations without an LRP rule as gradient x input."""

    def __post_init__(self) -> None:
        if self.ig_steps < 1 or self.smoothgrad_samples < 1 or self.internal_batch_size < 1:
            raise KlugerhansError("IG steps, SmoothGrad samples and the internal batch size must be at least 1")
        if not 0.0 < self.smoothgrad_noise < 1.0:
            raise KlugerhansError(f"SmoothGrad noise must be in (0, 1), got {self.smoothgrad_noise}")
        if not 0.0 < self.occlusion_window <= 0.5:
            raise KlugerhansError(
                f"occlusion window must be in (0, 0.5] of the image side, got {self.occlusion_window}"
            )


Builder = Callable[[nn.Module, MethodOptions], Attributor]
METHODS: Registry[Builder] = Registry("attribution method")
"""Attribution methods ``fn(model, options) -> attributor`` by name (besides ``lrp:<composite>``)."""
register_method = METHODS.register


def available_methods() -> list[str]:
    """All method names: ``lrp:<composite>`` for every registered composite, then the other methods."""
    return [f"lrp:{name}" for name in sorted(COMPOSITES)] + sorted(METHODS)


def check_methods(names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Return ``names`` as a tuple if all are known, else raise a one-line error listing the choices."""
    known = set(available_methods())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise KlugerhansError(
            f"unknown attribution method {unknown[0]!r}: choose from {', '.join(available_methods())}"
        )
    if len(set(names)) != len(names):
        raise KlugerhansError("each attribution method may be listed only once")
    return tuple(names)


def _lrp(model: nn.Module, composite: str, options: MethodOptions) -> Attributor:
    explainer = LRP(model, get_composite(composite, norm=options.norm), fallback=options.fallback)

    def run(x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return explainer.attribute(x, targets).relevance.sum(1).float().cpu()

    return run


def _frozen_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy without in-place ops and without parameter gradients (captum hooks and re-runs it)."""
    clone = copy.deepcopy(model).eval()
    for module in clone.modules():
        if hasattr(module, "inplace"):
            setattr(module, "inplace", False)  # noqa: B010 - nn.Module typing hides the attribute
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


def _device(model: nn.Module) -> torch.device:
    return next(iter(model.parameters())).device


def _summed(attr: torch.Tensor) -> torch.Tensor:
    return attr.detach().sum(1).float().cpu()


def _captum(model: nn.Module, make: Callable[[nn.Module], Any], call: Callable[..., torch.Tensor]) -> Attributor:
    """An attributor that runs ``call(method, x, targets)`` with captum's ``make(net)`` on a frozen copy."""
    net = _frozen_copy(model)
    method = make(net)

    def run(x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = x.to(_device(net)).requires_grad_(True)
        return call(method, x, targets.to(x.device))

    return run


@register_method("gradient")
def _gradient(model: nn.Module, options: MethodOptions) -> Attributor:
    from captum.attr import Saliency

    return _captum(model, Saliency, lambda m, x, t: _summed(m.attribute(x, target=t, abs=False)))


@register_method("gradient_x_input")
def _gradient_x_input(model: nn.Module, options: MethodOptions) -> Attributor:
    from captum.attr import InputXGradient

    return _captum(model, InputXGradient, lambda m, x, t: _summed(m.attribute(x, target=t)))


@register_method("integrated_gradients")
def _integrated_gradients(model: nn.Module, options: MethodOptions) -> Attributor:
    from captum.attr import IntegratedGradients

    def call(method: IntegratedGradients, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        attr = method.attribute(
            x, baselines=torch.zeros_like(x), target=targets, n_steps=options.ig_steps,
            internal_batch_size=options.internal_batch_size,
        )  # fmt: skip
        return _summed(attr)

    return _captum(model, IntegratedGradients, call)


@register_method("smoothgrad")
def _smoothgrad(model: nn.Module, options: MethodOptions) -> Attributor:
    from captum.attr import NoiseTunnel, Saliency

    net = _frozen_copy(model)
    method = NoiseTunnel(Saliency(net))
    # Input range of a normalised channel is 1/std (pixel values 0..1); average the three channels.
    stdev = options.smoothgrad_noise * float(np.mean([1.0 / s for s in options.norm.std]))
    gen = torch.Generator().manual_seed(options.seed)

    def run(x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # captum draws the noise from torch's global generator; seed it from ours so results repeat.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
            attr = method.attribute(
                x.to(_device(net)),
                nt_type="smoothgrad",
                nt_samples=options.smoothgrad_samples,
                nt_samples_batch_size=max(1, options.internal_batch_size // max(1, len(x))),
                stdevs=stdev,
                target=targets.to(_device(net)),
                abs=False,
            )
        return _summed(attr)

    return run


def _last_spatial_layer(net: nn.Module, x: torch.Tensor) -> nn.Module:
    """The last leaf module whose output is a (N, C, h, w) map with h, w >= max(2, S / 8) (Grad-CAM's layer)."""
    least = max(2, x.shape[-1] // 8)
    found: list[nn.Module] = []
    hooks = []
    for module in net.modules():
        if len(list(module.children())) == 0:

            def hook(mod: nn.Module, _inp: object, out: object) -> None:
                if isinstance(out, torch.Tensor) and out.ndim == 4 and min(out.shape[-2:]) >= least:
                    found.append(mod)

            hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            net(x[:1])
    finally:
        for h in hooks:
            h.remove()
    if not found:
        raise KlugerhansError("Grad-CAM needs a convolutional feature map; the model has none")
    return found[-1]


@register_method("grad_cam")
def _grad_cam(model: nn.Module, options: MethodOptions) -> Attributor:
    from captum.attr import LayerGradCam

    net = _frozen_copy(model)
    state: dict[str, LayerGradCam] = {}

    def run(x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = x.to(_device(net))
        if "method" not in state:
            state["method"] = LayerGradCam(net, _last_spatial_layer(net, x))
        cam = state["method"].attribute(x, target=targets.to(x.device), relu_attributions=True)
        cam = F.interpolate(cam.detach(), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return cam[:, 0].float().cpu()

    return run


@register_method("occlusion")
def _occlusion(model: nn.Module, options: MethodOptions) -> Attributor:
    from captum.attr import Occlusion

    def call(method: Occlusion, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        side = max(2, round(options.occlusion_window * x.shape[-1]))
        with torch.no_grad():
            attr = method.attribute(
                x.detach(), sliding_window_shapes=(x.shape[1], side, side), strides=(x.shape[1], side, side),
                baselines=0.0, target=targets,
                perturbations_per_eval=max(1, options.internal_batch_size // max(1, len(x))),
            )  # fmt: skip
        # The window spans all channels, so each channel holds the same value; summing would only triple it.
        return attr[:, 0].float().cpu()

    return _captum(model, Occlusion, call)


@register_method("random")
def _random(model: nn.Module, options: MethodOptions) -> Attributor:
    gen = torch.Generator().manual_seed(options.seed)

    def run(x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return torch.randn((len(x), *x.shape[-2:]), generator=gen)

    return run


def make_attributor(name: str, model: nn.Module, options: MethodOptions | None = None) -> Attributor:
    """Build the attribution method ``name`` for ``model`` (see the module docstring for names)."""
    options = options or MethodOptions()
    check_methods([name])
    if name.startswith("lrp:"):
        return _lrp(model, name.split(":", 1)[1], options)
    return METHODS[name](model, options)


def attribute(
    attributor: Attributor,
    images: np.ndarray | torch.Tensor,
    targets: np.ndarray | torch.Tensor,
    batch_size: int = 64,
    norm: Normalization | None = None,
) -> torch.Tensor:
    """Run ``attributor`` over all images in batches.

    Args:
        attributor: from :func:`make_attributor`.
        images: (N, S, S, 3) uint8 (normalised per batch with ``norm``) or (N, 3, S, S) normalised floats.
        targets: (N,) class ids to explain.
        batch_size: images per call.
        norm: normalisation of uint8 images.

    Returns:
        (N, S, S) float32 relevance on the CPU.
    """
    targets = torch.as_tensor(np.asarray(targets) if isinstance(targets, np.ndarray) else targets).long()
    if len(targets) != len(images):
        raise KlugerhansError(f"got {len(targets)} targets for {len(images)} images")
    raw = isinstance(images, np.ndarray)
    parts = []
    for start in range(0, len(images), max(1, batch_size)):
        rows = slice(start, start + batch_size)
        x = to_tensor(images[rows], norm) if raw else images[rows]
        parts.append(attributor(x, targets[rows]))  # type: ignore[arg-type]
    if not parts:
        size = images.shape[1] if raw else images.shape[-1]
        return torch.zeros((0, size, size))
    return torch.cat(parts)
