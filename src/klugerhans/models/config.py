"""Architectures by name: the family and model registries, :class:`ModelConfig` and :func:`create_model`.

A classifier is named by a *family* and an *arch* (:class:`ModelConfig` stores both). Each family is an entry of
:data:`FAMILIES` that lists its names and says what each of them takes (a :class:`ModelSpec`: input sizes, a width
multiplier, the resize of images, parts it is built without), so no caller checks a family's name. "klugerhans" are
our own models, registered in :data:`MODELS` with :func:`register_model` (our VGGs: :mod:`klugerhans.models.vgg`);
"torchvision" and "timm" are declared in :mod:`klugerhans.models.architectures`; "module" is a model handed over in
memory, described but never rebuilt. Importing :mod:`klugerhans.models` registers them all.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from klugerhans.errors import KlugerhansError
from klugerhans.models.preprocess import ResizeMode
from klugerhans.registry import Registry, suggest

INPUT_SIZES: tuple[int, ...] = (32, 48, 64)
"""Input sides our VGGs are made for (the sign crops' sizes): what a registered model takes unless it says."""
OURS = "klugerhans"
"""The family of :data:`MODELS`, and what checkpoints and recipes without a family mean."""
IN_MEMORY = "module"
"""Family of a model handed over as an ``nn.Module`` (``explain_model``, ``audit_model``): described, never rebuilt."""

Builder = Callable[["ModelConfig"], nn.Module]


@dataclass(frozen=True)
class ModelSpec:
    """What an architecture takes and how it is built: an entry of :data:`MODELS`, or what a family says of a name."""

    build: Builder | None
    """``fn(config) -> nn.Module``, freshly initialised; None for a model handed over in memory (never rebuilt)."""
    input_sizes: tuple[int, ...] | None = INPUT_SIZES
    """The input sides it is made for; None: any side from ``min_input_size`` on (the torchvision and timm builders
    also try the side with a forward pass on the meta device, and name the architecture's own minimum)."""
    min_input_size: int = 1
    """Smallest input side where ``input_sizes`` is None."""
    width: bool = True
    """It takes a width multiplier (:attr:`ModelConfig.width`)."""
    resize: ResizeMode = "square"
    """How images reach its input size when no training recipe says: "square" (the sign crops klugerhans trains on)
    or "center_crop" (torchvision's evaluation transform, for weights trained elsewhere)."""
    skip_keys: tuple[str, ...] = ()
    """State-dict prefixes of parts it is built without (auxiliary heads), dropped from a user's weights."""
    read_config: Callable[[Mapping[str, Any], str, int | None], ModelConfig] | None = None
    """``fn(state_dict, arch, input_size or None) -> ModelConfig``: the width and input size a plain state_dict of
    this architecture has (our VGG reads its layers' shapes); None: width 1 and the given or a default size."""


@dataclass(frozen=True)
class Family:
    """A family of architectures: the names it builds and what each of them takes."""

    names: Callable[[], Collection[str]] | None
    """Its architecture names, asked when needed (:data:`MODELS` grows, timm is imported on demand); None: any name,
    for a model handed over in memory."""
    spec: Callable[[str], ModelSpec]
    """``spec(arch)``: what one of its architectures takes."""
    bare: bool = False
    """Users name its architectures without the ``family:`` prefix (torchvision's ``resnet18``); one family is."""


FAMILIES: Registry[Family] = Registry("architecture family")
"""Architecture families by name (see :class:`Family`)."""
register_family = FAMILIES.register
MODELS: Registry[ModelSpec] = Registry("architecture")
"""Our own architectures by name, family "klugerhans" (see :func:`register_model`)."""


def register_model(name: str, **capabilities: Any) -> Callable[[Builder], Builder]:
    """Decorator: register ``fn(config) -> nn.Module`` as architecture ``name`` of family "klugerhans", with what it
    takes (fields of :class:`ModelSpec`); ``--arch klugerhans:NAME`` then names it.

    Example:
        >>> @register_model("tiny_cnn", width=False, input_sizes=(32,))
        ... def tiny_cnn(config: ModelConfig) -> nn.Module: ...
    """

    def wrap(build: Builder) -> Builder:
        MODELS.register(name)(ModelSpec(build, **capabilities))
        return build

    return wrap


def model_spec(family: str, arch: str) -> ModelSpec:
    """What architecture ``arch`` of ``family`` takes; a one-line error naming the closest names for unknown ones."""
    entry = FAMILIES.get_or_raise(family)
    if entry.names is not None:
        names = entry.names()
        if arch not in names:
            raise KlugerhansError(f"unknown architecture {format_arch(family, arch)}: {suggest(arch, names)}")
    return entry.spec(arch)


def format_arch(family: str, arch: str) -> str:
    """An architecture as users name it: ``resnet18`` (the bare family's), ``timm:NAME`` or ``klugerhans:vgg11_bn``."""
    entry = FAMILIES.get(family)
    return arch if entry is not None and entry.bare else f"{family}:{arch}"


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a classifier; stored in every checkpoint."""

    arch: str = "vgg11_bn"
    """Architecture name within ``family``: "vgg11_bn"/"vgg11" for ours, a torchvision builder or a timm name."""
    width: float = 1.0
    """Multiplier on every layer's channel count (1.0 = the paper's 64..512); models that take one only (ours)."""
    input_size: int = 32
    """Side of the square input in pixels: one of the model's input sizes (32, 48 or 64 for ours), else at least its
    smallest (32 for torchvision and timm)."""
    num_classes: int = 43
    """Number of output classes."""
    dropout: float = 0.5
    """Dropout before the last layer, as in VGG; family "klugerhans" only (the others bring their own)."""
    family: str = OURS
    """A registered family: "klugerhans" (ours; what checkpoints without this field mean), "torchvision", "timm"."""

    def __post_init__(self) -> None:
        spec = self.spec
        if spec.build is None:  # described only: what it was built with is not ours to check
            if self.input_size < 1 or self.num_classes < 1:
                raise KlugerhansError(f"need an input size and classes, got {self.input_size} px, {self.num_classes}")
            return
        if spec.width:
            if not 0.05 <= self.width <= 4.0:
                raise KlugerhansError(f"width multiplier must be between 0.05 and 4, got {self.width}")
        elif self.width != 1.0:
            raise KlugerhansError(f"{format_arch(self.family, self.arch)} takes no width multiplier; leave it at 1")
        if spec.input_sizes is not None:
            if self.input_size not in spec.input_sizes:
                raise KlugerhansError(f"input size must be one of {spec.input_sizes}, got {self.input_size}")
        elif not isinstance(self.input_size, int) or self.input_size < spec.min_input_size:
            raise KlugerhansError(
                f"input size {self.input_size} px is too small for {format_arch(self.family, self.arch)}; "
                f"give at least {spec.min_input_size}"
            )
        if self.num_classes < 2:
            raise KlugerhansError(f"need at least 2 classes, got {self.num_classes}")
        if not 0.0 <= self.dropout < 1.0:
            raise KlugerhansError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def spec(self) -> ModelSpec:
        """What this architecture takes (its entry in its family)."""
        return model_spec(self.family, self.arch)

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def create_model(config: ModelConfig | None = None, **overrides: float | int | str) -> nn.Module:
    """Build a freshly initialised classifier of any family: (N, 3, S, S) -> (N, num_classes) logits.

    Args:
        config: architecture; defaults to full-width VGG11-BN for 32 px inputs and 43 classes.
        **overrides: fields of :class:`ModelConfig` to change, e.g. ``width=0.5`` or
            ``family="torchvision", arch="resnet18", input_size=64``.

    Raises:
        KlugerhansError: an invalid configuration, or an input size the architecture cannot run (the message
            names the smallest that works).
    """
    base = config.to_dict() if config else {}
    base.update(overrides)
    cfg = ModelConfig(**base)  # type: ignore[arg-type]
    build = cfg.spec.build
    if build is None:
        raise KlugerhansError(f"{cfg.arch} was handed over as a module and cannot be rebuilt from its description")
    return build(cfg)


register_family(OURS)(Family(lambda: MODELS, MODELS.__getitem__))
_HANDED_OVER = ModelSpec(None, input_sizes=None, width=False, resize="center_crop")
register_family(IN_MEMORY)(Family(None, lambda _arch: _HANDED_OVER))
