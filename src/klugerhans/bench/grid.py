"""The benchmark's models: a seeded grid of manipulated training recipes and clean controls.

Each manipulated model gets one artefact drawn from the axes of :class:`SuiteConfig`: the artefact kind
(:data:`ARTEFACTS`), the target class (drawn at random, never always 4), its size, its position (anywhere on the sign or
one fixed spot), the share of the class carrying it and the label mode (clean-label: on the class's own images, the
teaching case's story; dirty-label: on other classes' images relabelled to the target, the BadNets backdoor). Values are
dealt so that every value of every axis occurs about equally often (each axis is a shuffled cycle of its values), not
left to chance on a couple of dozen models. Clean controls differ in their seed only.

Every model is an independent :class:`BenchJob`: ``klugerhans bench --list`` prints them, ``--job ID`` runs one, so
a big suite fans out over GPUs or a cluster scheduler.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from klugerhans.bench.neural_cleanse import CleanseConfig
from klugerhans.data.classes import NUM_CLASSES
from klugerhans.data.sticker import StickerConfig
from klugerhans.errors import KlugerhansError
from klugerhans.models.architectures import parse_arch
from klugerhans.models.config import model_spec
from klugerhans.models.recipe import TrainConfig
from klugerhans.registry import Registry

__all__ = ["ARTEFACTS", "SUITES", "BenchJob", "SuiteConfig", "make_suite", "register_suite", "run_order"]

_PALETTE = ((255, 0, 255), (0, 255, 255), (255, 255, 0), (0, 200, 0), (255, 128, 0))
"""Colours of coloured patches, text marks, frames and casts (drawn per model)."""

ARTEFACTS: dict[str, dict[str, Any]] = {
    "black_square": {"pattern": "solid", "shape": "square", "color": (0, 0, 0)},
    "colour_patch": {"pattern": "solid", "shape": "circle", "color": None},
    "text": {"pattern": "text", "shape": "square", "color": None},
    "frame": {"pattern": "frame", "shape": "square", "color": None},
    "noise": {"pattern": "noise", "shape": "square", "color": (0, 0, 0)},
    "cast": {"pattern": "cast", "shape": "square", "color": None},
    "corner_tag": {"pattern": "text", "shape": "square", "color": None, "placement": "corner"},
}
"""Artefact kind -> the sticker fields it fixes (``color`` None: drawn from a palette per model; ``placement``, where
given, overrides the position axis). ``corner_tag`` is a text mark in the image's corner, off the sign: the "source
tag" kind of Clever Hans (Lapuschkin et al. 2019: the PASCAL VOC horse class recognised by a copyright tag)."""
ON_SIGN: tuple[str, ...] = ("black_square", "colour_patch", "text", "frame", "noise", "cast")
"""The artefact kinds that sit on the sign (or over the whole image): the default of a suite."""


@dataclass(frozen=True)
class SuiteConfig:
    """What a suite trains: the grid's axes, how many models, and the training recipe they share."""

    name: str
    """Suite name (``--suite``)."""
    n_manipulated: int
    """Models with an artefact."""
    n_clean: int
    """Clean controls (different seeds)."""
    recipe: TrainConfig
    """Shared training recipe (data, architecture, epochs, ...); its sticker and seed are set per model."""
    archs: tuple[str, ...] = ("klugerhans:vgg11_bn",)
    """Architectures, dealt like an axis (``--arch`` names)."""
    artefacts: tuple[str, ...] = ON_SIGN
    """Artefact kinds (keys of :data:`ARTEFACTS`)."""
    sizes: tuple[float, ...] = (0.2, 0.3)
    """Artefact side as a share of the sign box (for a cast: its strength)."""
    positions: tuple[str, ...] = ("random", "fixed")
    """"random": anywhere on the sign, per image; "fixed": one spot on every image."""
    fractions: tuple[float, ...] = (1.0, 0.5, 0.2)
    """Share of the target class carrying the artefact (dirty-label: poisoned images per target-class image)."""
    labels: tuple[str, ...] = ("clean", "dirty")
    """Label modes."""
    seed: int = 0
    """Seed of the grid draw (models get seeds derived from it)."""
    audit_per_class: int = 50
    """Heatmaps per class in each model's audit."""
    fix_epochs: int = 2
    """Fine-tuning epochs of each manipulated model's repair (0: no repair)."""
    cleanse_steps: int = CleanseConfig.steps
    """Neural Cleanse's optimisation steps per class (the baseline ``neural_cleanse``)."""
    cleanse_group: int = CleanseConfig.group
    """Classes Neural Cleanse searches side by side (the same search, faster on small activations; see
    :attr:`~klugerhans.bench.neural_cleanse.CleanseConfig.group`)."""
    variants: bool = True
    """Also run the audit's variants (the window probe alone, every probe) beside the audit as it ships."""
    min_attack_success: float = 0.0
    """A manipulated model counts in the headline only if its artefact turns at least this share of the other
    classes' test images into the target (its flip rate); the others are reported apart (``not_taken``)."""
    max_attempts: int = 1
    """Trainings per manipulated model: one whose artefact did not take is trained again with the next seed."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.artefacts) - set(ARTEFACTS))
        checks = [
            (self.n_manipulated >= 0 and self.n_clean >= 0, "model counts must be >= 0"),
            (self.n_manipulated + self.n_clean >= 1, "a suite needs at least one model"),
            (not unknown, f"unknown artefact kind(s) {unknown}: choose from {', '.join(ARTEFACTS)}"),
            (all(0 < s < 1 for s in self.sizes), f"sizes must be in (0, 1), got {self.sizes}"),
            (all(0 < f <= 1 for f in self.fractions), f"fractions must be in (0, 1], got {self.fractions}"),
            (set(self.positions) <= {"random", "fixed"}, f"positions are 'random' or 'fixed', got {self.positions}"),
            (set(self.labels) <= {"clean", "dirty"}, f"labels are 'clean' or 'dirty', got {self.labels}"),
            (all((self.archs, self.artefacts, self.sizes, self.positions, self.fractions, self.labels)), "empty axis"),
            (self.fix_epochs >= 0, f"fix epochs must be >= 0, got {self.fix_epochs}"),
            (0 <= self.min_attack_success <= 1, f"min_attack_success must be in [0, 1], got {self.min_attack_success}"),
            (self.max_attempts >= 1, f"max_attempts must be >= 1, got {self.max_attempts}"),
            (self.cleanse_steps >= 1, f"cleanse_steps must be >= 1, got {self.cleanse_steps}"),
            (self.cleanse_group >= 1, f"cleanse_group must be >= 1, got {self.cleanse_group}"),
        ]
        for ok, message in checks:
            if not ok:
                raise KlugerhansError(message)


@dataclass(frozen=True)
class BenchJob:
    """One model of a suite: its id, its full training recipe and the grid values it stands for."""

    id: str
    """Unique within the suite, readable: ``m03-noise-t17`` (manipulated), ``c02`` (clean)."""
    recipe: TrainConfig
    """Everything that determines the model (its sticker has ``fraction`` 0 for a clean control)."""
    axes: dict[str, str] = field(default_factory=dict)
    """Grid axis -> value as text (``artefact``, ``size``, ``position``, ``fraction``, ``label``, ``arch``, ``data``);
    clean controls carry ``arch`` and ``data`` only."""

    @property
    def manipulated(self) -> bool:
        """Whether an artefact is planted."""
        return self.recipe.manipulated

    @property
    def target(self) -> int | None:
        """The planted class, None for a control."""
        return self.recipe.sticker.target_class if self.manipulated else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: id, manipulated, target, axes and the recipe."""
        recipe = self.recipe.to_dict()
        return {
            "id": self.id,
            "manipulated": self.manipulated,
            "target": self.target,
            "axes": self.axes,
            "recipe": recipe,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BenchJob:
        """Inverse of :meth:`to_dict`."""
        return cls(id=str(d["id"]), recipe=TrainConfig.from_dict(d["recipe"]), axes=dict(d.get("axes", {})))


SUITES: Registry[SuiteConfig] = Registry("suite")
"""Suite name -> :class:`SuiteConfig`."""


def register_suite(config: SuiteConfig) -> SuiteConfig:
    """Make ``config`` available as ``--suite config.name``."""
    return SUITES.register(config.name)(config)


def _cycle(values: Sequence[Any], n: int, rng: np.random.Generator) -> list[Any]:
    """``n`` values, each of ``values`` equally often (up to one), in a seeded random order."""
    reps = -(-n // len(values))
    dealt = [v for _ in range(reps) for v in rng.permutation(len(values)).tolist()][:n]
    return [values[i] for i in rng.permutation(dealt).tolist()] if n else []


def _sticker(
    kind: str, size: float, position: Any, fraction: float, label: Any, target: int, colour: Any
) -> StickerConfig:
    fixed = ARTEFACTS[kind]
    return StickerConfig(
        target_class=target,
        fraction=fraction,
        size=size,
        color=fixed["color"] if fixed["color"] is not None else colour,
        shape=fixed["shape"],
        pattern=fixed["pattern"],
        placement=fixed.get("placement", position),
        label=label,
    )


def make_suite(suite: str | SuiteConfig) -> list[BenchJob]:
    """The jobs of ``suite`` (a registered name or a config): manipulated models first, then controls.

    The same suite gives the same jobs, ids and recipes on every machine (all draws are seeded by ``suite.seed``).
    """
    config = SUITES.get_or_raise(suite) if isinstance(suite, str) else suite
    rng = np.random.default_rng([config.seed, 2026])
    n = config.n_manipulated
    axes = {
        "artefact": _cycle(config.artefacts, n, rng),
        "size": _cycle(config.sizes, n, rng),
        "position": _cycle(config.positions, n, rng),
        "fraction": _cycle(config.fractions, n, rng),
        "label": _cycle(config.labels, n, rng),
        "arch": _cycle(config.archs, n, rng),
    }
    targets = rng.integers(0, NUM_CLASSES, size=n).tolist()
    colours = [_PALETTE[i] for i in rng.integers(0, len(_PALETTE), size=n).tolist()]
    jobs = []
    for i in range(n):
        kind = axes["artefact"][i]
        sticker = _sticker(
            kind, axes["size"][i], axes["position"][i], axes["fraction"][i], axes["label"][i], targets[i], colours[i]
        )
        recipe = _with_arch(replace(config.recipe, sticker=sticker, seed=config.seed * 1000 + i), axes["arch"][i])
        values = {k: str(v[i]) for k, v in axes.items()} | {"data": recipe.data, "position": sticker.placement}
        jobs.append(BenchJob(f"m{i:02d}-{kind}-t{targets[i]}", recipe, values))
    clean_archs = _cycle(config.archs, config.n_clean, rng)
    for j in range(config.n_clean):
        control = replace(config.recipe.sticker, fraction=0.0)
        recipe = _with_arch(replace(config.recipe, sticker=control, seed=config.seed * 1000 + 500 + j), clean_archs[j])
        jobs.append(BenchJob(f"c{j:02d}", recipe, {"arch": clean_archs[j], "data": recipe.data}))
    return jobs


def run_order(jobs: Sequence[BenchJob]) -> list[BenchJob]:
    """``jobs`` in the order to run them: manipulated models and clean controls interleaved in proportion (48 and 24:
    two of one, then one of the other), so that every prefix of a suite that resumes over several sessions holds
    both kinds and its numbers can be summarised."""
    groups = [[j for j in jobs if j.manipulated], [j for j in jobs if not j.manipulated]]
    keyed = [((i + 0.5) / len(group), g, job) for g, group in enumerate(groups) for i, job in enumerate(group)]
    return [job for _, _, job in sorted(keyed, key=lambda k: (k[0], k[1]))]


def _with_arch(recipe: TrainConfig, arch: str) -> TrainConfig:
    parsed = parse_arch(arch)
    # The width multiplier is our VGG's; an architecture without one trains at its own size.
    width = recipe.width if model_spec(parsed["family"], parsed["arch"]).width else TrainConfig.width
    return replace(recipe, family=parsed["family"], arch=parsed["arch"], width=width)


_SYNTHETIC_RECIPE = TrainConfig(data="synthetic", width=0.25, epochs=8, per_class=200)
"""The CPU suites' recipe (``small``, ``takes``): a quarter-width model, 8 epochs on 200 synthetic signs a class."""

register_suite(
    SuiteConfig(
        name="smoke",
        n_manipulated=1,
        n_clean=1,
        recipe=TrainConfig(data="synthetic", width=0.125, epochs=2, per_class=40, batch_size=64),
        artefacts=("black_square",),
        sizes=(0.3,),
        positions=("random",),
        fractions=(1.0,),
        labels=("clean",),
        audit_per_class=10,
        fix_epochs=1,
        cleanse_steps=20,  # a smoke check of the baseline, not a search that finds triggers
    )
)
register_suite(
    SuiteConfig(
        name="small",
        n_manipulated=24,
        n_clean=12,
        recipe=_SYNTHETIC_RECIPE,
    )
)
register_suite(
    SuiteConfig(
        name="takes",
        n_manipulated=48,
        n_clean=24,
        recipe=_SYNTHETIC_RECIPE,
        archs=("klugerhans:vgg11_bn", "resnet18"),
        artefacts=tuple(ARTEFACTS),
        # measured in this recipe (docs/BENCH.md): a clean-label artefact turns 18-21% of the other classes' signs, it
        # cannot take; relabelled images (BadNets) take, a corner tag from size 0.3 and a ResNet's square from 100%
        sizes=(0.3, 0.35),
        fractions=(1.0,),
        labels=("dirty",),
        audit_per_class=50,
        fix_epochs=0,
        min_attack_success=0.8,
        max_attempts=2,
        # what makes 72 models affordable on a CPU (docs/BENCH.md): Neural Cleanse 16 classes a pass (1.5x on the
        # ResNets), and no variants (they re-run the audit twice)
        cleanse_group=16,
        variants=False,
    )
)
register_suite(
    SuiteConfig(
        name="full",
        n_manipulated=48,
        n_clean=24,
        recipe=TrainConfig(data="gtsrb", width=1.0, epochs=15),
        archs=("klugerhans:vgg11_bn", "resnet18"),
        sizes=(0.15, 0.2, 0.25, 0.3),
        audit_per_class=100,
        fix_epochs=3,
    )
)
