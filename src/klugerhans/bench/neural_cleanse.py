"""Neural Cleanse: trigger reverse-engineering per class, the detector a security engineer picks for a sticker.

Wang et al. 2019, "Neural Cleanse: Identifying and Mitigating Backdoor Attacks in Neural Networks" (IEEE S&P),
demonstrated on GTSRB stickers. For every class ``t`` it searches the smallest trigger that turns other classes'
images into ``t``: a mask ``m`` (S x S, in [0, 1]) and a pattern ``p`` (3 x S x S, in [0, 1]) stamped as
``x' = (1 - m) * x + m * p``, minimising ``CE(f(x'), t) + cost * |m|_1``. A backdoored target needs a far smaller
mask than the others (the planted trigger is a short cut to it); the median absolute deviation of the mask norms
over classes turns that into an anomaly index, and a class whose index exceeds 2 on the small side is flagged.

As the paper and its authors' code: mask and pattern in tanh space, Adam (lr 0.1, betas 0.5/0.9), the cost starts
at 1e-3 and is multiplied by 1.5 after ``patience`` epochs at or above the 99% attack-success goal and divided by
1.5^1.5 after ``patience`` epochs below it; the smallest mask that reached the goal is kept; the anomaly index is
``(median - |m_t|) / (1.4826 * MAD)``. Different from the paper, to fit a CPU budget: an epoch is a fixed number of
mini-batches of the clean images, and the search stops after ``steps`` steps (the paper runs up to 80 epochs of the
whole clean set). A class whose search never reaches the goal gets the mask norm of the whole image (S * S). The
classes can be searched side by side (:func:`reverse_triggers`, :attr:`CleanseConfig.group` a pass), each with its
own mask, pattern, optimiser state and cost: the same search as one class after another, in fuller batches.

Maintained implementations: ART's ``NeuralCleanse`` is Keras-only; trojanzoo (2.0.3 on PyPI) has a PyTorch one that
runs inside its own dataset, model and attack wrappers, and is not (yet) set beside this one as a second oracle.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from klugerhans.bench.baselines import BaselineInputs, Outcome, register_baseline
from klugerhans.errors import KlugerhansError
from klugerhans.models.preprocess import Normalization, Normalizer

__all__ = ["CleanseConfig", "ReversedTrigger", "anomaly_index", "reverse_trigger", "reverse_triggers"]

MAD_CONSISTENCY = 1.4826
"""Makes the median absolute deviation estimate the standard deviation of normally distributed norms."""


@dataclass(frozen=True)
class CleanseConfig:
    """How hard each class's trigger is searched for (the paper's optimiser, a CPU-sized budget)."""

    steps: int = 300
    """Optimisation steps per class."""
    batch_size: int = 32
    """Clean images per step."""
    epoch_steps: int = 10
    """Steps per epoch: the cost is adjusted and the best mask kept once per epoch."""
    lr: float = 0.1
    """Adam's learning rate on the tanh-space mask and pattern."""
    init_cost: float = 1e-3
    """Weight of the mask's L1 norm at the start."""
    cost_multiplier: float = 1.5
    """Up by this factor, down by its 1.5th power."""
    patience: int = 5
    """Epochs above (below) the goal before the cost goes up (down)."""
    attack_success: float = 0.99
    """Share of images a trigger must turn into the class to count."""
    anomaly_threshold: float = 2.0
    """Anomaly index above which a class is flagged."""
    group: int = 1
    """Classes searched side by side in one forward pass (:func:`reverse_triggers`); memory grows with it. It pays
    where the model's activations are small and costs where they are large (benchmarks/neural_cleanse_speed.py, 16 a
    pass: 1.53x on a 32 px torchvision ResNet-18, 1.05x on our VGG11-BN at width 0.25, 0.78x at width 0.75), so it
    is one class a pass unless asked."""

    def __post_init__(self) -> None:
        if min(self.steps, self.batch_size, self.epoch_steps, self.patience, self.group) < 1:
            raise KlugerhansError("Neural Cleanse needs at least one step, image, epoch step and patience epoch")
        if not 0.0 < self.attack_success <= 1.0:
            raise KlugerhansError(f"the attack-success goal must be in (0, 1], got {self.attack_success}")


@dataclass(frozen=True)
class ReversedTrigger:
    """The smallest trigger found for one class."""

    target: int
    mask: np.ndarray
    """(S, S) float32 in [0, 1]."""
    pattern: np.ndarray
    """(S, S, 3) float32 in [0, 1]."""
    norm: float
    """L1 norm of the mask (pixels); ``S * S`` where the goal was never reached."""
    success: float
    """Attack success of the kept trigger (of the last epoch where none reached the goal)."""


def reverse_trigger(
    model: nn.Module,
    images: torch.Tensor,
    target: int,
    norm: Normalization,
    config: CleanseConfig = CleanseConfig(),
    generator: torch.Generator | None = None,
) -> ReversedTrigger:
    """Search the smallest mask and pattern that turn ``images`` into ``target`` (Wang et al. 2019, Sec. IV).

    Args:
        model: classifier on normalised (N, 3, S, S) inputs, in eval mode; its weights are not changed.
        images: (N, 3, S, S) float32 images on the 0..1 scale, of classes other than ``target``, on the model's device.
        target: the class the trigger should produce.
        norm: the model's input normalisation.
        config: the optimiser's settings.
        generator: draws the starts and the mini-batches (CPU generator).
    """
    if len(images) == 0:
        raise KlugerhansError(f"Neural Cleanse needs images of classes other than {target}")
    return _search(model, images, [torch.arange(len(images))], [target], norm, config, generator)[0]


def reverse_triggers(
    model: nn.Module,
    images: torch.Tensor,
    labels: np.ndarray,
    targets: list[int],
    norm: Normalization,
    config: CleanseConfig = CleanseConfig(),
    generator: torch.Generator | None = None,
) -> dict[int, ReversedTrigger]:
    """:func:`reverse_trigger` for every class of ``targets``, each on the images of the other classes, searched
    side by side: :attr:`CleanseConfig.group` classes share one forward pass (their images stacked), which a CPU runs
    faster per image than one class's mini-batch where the model's activations are small (benchmarks/
    neural_cleanse_speed.py); each class keeps its own mask, pattern, optimiser state (Adam is elementwise) and cost
    schedule, so the search is the per-class one.

    Args:
        model: as :func:`reverse_trigger`.
        images: (N, 3, S, S) float32 images on the 0..1 scale, on the model's device.
        labels: (N,) their classes.
        targets: the classes to search triggers for; each needs an image of another class.
        norm, config, generator: as :func:`reverse_trigger`.
    """
    labels = np.asarray(labels)
    pools = [torch.from_numpy(np.flatnonzero(labels != t)) for t in targets]
    empty = [t for t, pool in zip(targets, pools, strict=True) if len(pool) == 0]
    if empty:
        raise KlugerhansError(f"Neural Cleanse needs images of classes other than {empty[0]}")
    found: dict[int, ReversedTrigger] = {}
    for i in range(0, len(targets), config.group):
        chunk = list(targets[i : i + config.group])
        for t, trigger in zip(
            chunk, _search(model, images, pools[i : i + config.group], chunk, norm, config, generator), strict=True
        ):
            found[t] = trigger
    return found


def _search(
    model: nn.Module,
    images: torch.Tensor,
    pools: list[torch.Tensor],
    targets: list[int],
    norm: Normalization,
    config: CleanseConfig,
    generator: torch.Generator | None,
) -> list[ReversedTrigger]:
    """The search of K = len(targets) triggers at once; target k draws its mini-batches from ``images[pools[k]]``."""
    device, side, k, b = images.device, images.shape[-1], len(targets), config.batch_size
    normalise = Normalizer(norm, str(device))
    # Random starts in [0, 1] as the authors' code (a flat start leaves ReLU units that see no trigger dead).
    start = torch.rand(k, 4, side, side, generator=generator).to(device)
    raw = torch.atanh((start - 0.5) * (2 - 1e-4))
    mask_raw = raw[:, :1].clone().requires_grad_(True)
    pattern_raw = raw[:, 1:].clone().requires_grad_(True)
    optimiser = torch.optim.Adam([mask_raw, pattern_raw], lr=config.lr, betas=(0.5, 0.9))
    wanted = torch.tensor(targets, device=device).repeat_interleave(b)
    sizes = torch.tensor([len(p) for p in pools], dtype=torch.float64)
    padded = torch.nn.utils.rnn.pad_sequence([p.long() for p in pools], batch_first=True)
    cost = torch.full((k,), config.init_cost, dtype=torch.float64)
    up, down = torch.zeros(k, dtype=torch.long), torch.zeros(k, dtype=torch.long)
    kept: list[ReversedTrigger | None] = [None] * k
    success = torch.zeros(k, dtype=torch.float64)
    hits, total = torch.zeros(k, dtype=torch.long), 0
    for step in range(1, config.steps + 1):
        draw = (torch.rand(k, b, generator=generator, dtype=torch.float64) * sizes[:, None]).long()
        batch = images[padded.gather(1, draw).reshape(-1).to(device)].view(k, b, 3, side, side)
        mask = torch.tanh(mask_raw) / 2 + 0.5  # (K, 1, S, S)
        pattern = torch.tanh(pattern_raw) / 2 + 0.5  # (K, 3, S, S)
        stamped = (1 - mask[:, None]) * batch + mask[:, None] * pattern[:, None]
        logits = model(normalise(stamped.reshape(k * b, 3, side, side)))
        ce = nn.functional.cross_entropy(logits, wanted, reduction="none").view(k, b).mean(1)
        loss = (ce + cost.to(device, torch.float32) * mask.sum(dim=(1, 2, 3))).sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        hits += (logits.argmax(1) == wanted).view(k, b).sum(1).cpu()
        total += b
        if step % config.epoch_steps:
            continue
        success, hits, total = hits.double() / total, torch.zeros(k, dtype=torch.long), 0
        reached = success >= config.attack_success
        l1 = mask.detach().sum(dim=(1, 2, 3)).cpu()
        for i in np.flatnonzero(reached.numpy()):
            current = kept[i]
            if current is None or float(l1[i]) < current.norm:
                kept[i] = ReversedTrigger(
                    targets[i],
                    mask.detach()[i, 0].cpu().numpy().astype(np.float32),
                    pattern.detach()[i].permute(1, 2, 0).cpu().numpy().astype(np.float32),
                    float(l1[i]),
                    float(success[i]),
                )
        up = torch.where(reached, up + 1, 0)
        down = torch.where(reached, 0, down + 1)
        raise_cost, lower_cost = up >= config.patience, down >= config.patience
        cost = torch.where(raise_cost, cost * config.cost_multiplier, cost)
        cost = torch.where(lower_cost, cost / config.cost_multiplier**1.5, cost)
        up, down = torch.where(raise_cost, 0, up), torch.where(lower_cost, 0, down)
    whole = np.ones((side, side), np.float32)
    blank = np.zeros((side, side, 3), np.float32)
    return [
        found if found is not None else ReversedTrigger(t, whole, blank, float(side * side), float(success[i]))
        for i, (t, found) in enumerate(zip(targets, kept, strict=True))
    ]


def anomaly_index(norms: dict[int, float]) -> dict[int, float]:
    """Per class ``(median - norm) / (1.4826 * MAD)`` over the classes: large where a class's trigger is small.

    The paper flags an index above 2 on the small side; a large mask is no sign of a backdoor, so the index keeps
    its sign (negative for masks larger than the median). All classes equal (MAD 0): every index 0.
    """
    values = np.array(list(norms.values()), dtype=np.float64)
    median = float(np.median(values))
    mad = MAD_CONSISTENCY * float(np.median(np.abs(values - median)))
    if mad == 0.0:
        return dict.fromkeys(norms, 0.0)
    return {c: (median - v) / mad for c, v in norms.items()}


@register_baseline("neural_cleanse")
def _neural_cleanse(
    inputs: BaselineInputs, steps: int = CleanseConfig.steps, group: int = CleanseConfig.group
) -> Outcome:
    config = CleanseConfig(steps=steps, group=group)
    x = torch.from_numpy(inputs.x).to(inputs.device)
    generator = torch.Generator().manual_seed(inputs.seed)
    present = set(np.unique(inputs.y).tolist())
    # a class absent from the data is not scored, as for the other baselines
    targets = [c for c in range(inputs.num_classes) if c in present and (inputs.y != c).any()]
    with _frozen(inputs.model):
        found = reverse_triggers(inputs.model, x, inputs.y, targets, inputs.norm, config, generator)
    norms = {c: t.norm for c, t in found.items()}
    scores = dict.fromkeys(range(inputs.num_classes), math.nan)
    index = anomaly_index(norms) if len(norms) >= 3 else {}
    scores.update(index)
    flagged = tuple(sorted((c for c, a in index.items() if a > config.anomaly_threshold), key=lambda c: -index[c]))
    note = (
        f"trigger reverse-engineering per class ({config.steps} Adam steps of {config.batch_size} images of the "
        f"other classes, the paper's cost schedule, {config.attack_success:.0%} attack-success goal); score = the "
        "anomaly index of the class's smallest mask norm, (median - norm) / (1.4826 x MAD) over the classes; "
        f"flagged = an index above {config.anomaly_threshold:g}, the paper's rule"
    )
    return scores, flagged, note


@contextlib.contextmanager
def _frozen(model: nn.Module) -> Iterator[None]:
    """No weight gradients while the trigger is optimised (faster); the flags restored after."""
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)
