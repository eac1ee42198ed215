"""What one benchmark job found (its ``result.json``), as frozen records: :class:`JobResult` and its parts.

Files written by older versions lack some keys (the retries' ``run``, ``attempts`` and ``took``; a detector's
``seconds``, ``probe`` and ``by_probe``): those fields are None there, and such a file reads and writes back as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

from klugerhans.bench.grid import BenchJob
from klugerhans.bench.records import OPTIONAL, Record
from klugerhans.models.recipe import TrainConfig

__all__ = [
    "FIRST_RUN",
    "TOTAL",
    "CompositeScore",
    "DetectorResult",
    "JobEvaluation",
    "JobResult",
    "Localisation",
    "RepairNumbers",
    "RepairResult",
]

FIRST_RUN = "run"
"""The folder of a job's first training run (a retry trains into ``run-2``, ...)."""
TOTAL = "total"
"""The key of a job's whole time in its :attr:`JobResult.timings` (and of a suite's in ``bench.json``)."""


@dataclass(frozen=True)
class DetectorResult(Record):
    """What one detector says about one model: a suspicion score per class and the classes it flags itself."""

    scores: dict[int, float]
    """Class -> suspicion, higher is more suspicious; NaN where the class was not scored."""
    flagged: tuple[int, ...]
    """Classes the detector flags by its own rule (the audit: most suspicious first)."""
    note: str | None = field(default=None, metadata=OPTIONAL)
    """A baseline's note: what its score and flags mean here."""
    seconds: float | None = field(default=None, metadata=OPTIONAL)
    """Wall-clock seconds the detector took on the model."""
    threshold: float | None = field(default=None, metadata=OPTIONAL)
    """The audit's flag threshold (its broad hijack rate)."""
    order: tuple[int, ...] | None = field(default=None, metadata=OPTIONAL)
    """The audit's classes, most suspicious first."""
    probe: dict[int, str] | None = field(default=None, metadata=OPTIONAL)
    """The audit's best transplant probe per tested class."""
    by_probe: dict[int, dict[str, dict[str, float]]] | None = field(default=None, metadata=OPTIONAL)
    """The audit's numbers per tested class and probe (hijack rates, controls, p-values)."""

    @property
    def top_class(self) -> int | None:
        """The audit's most suspicious class (None: no order recorded, or no class tested)."""
        return self.order[0] if self.order else None


@dataclass(frozen=True)
class JobEvaluation(Record):
    """The trained model on clean test images and with its artefact glued on (:func:`evaluate_model`'s numbers)."""

    accuracy: float
    """Top-1 accuracy on the clean test images."""
    clean_target_accuracy: float
    """Accuracy on the clean test images of the target class."""
    flip_rate: float
    """Share of the other classes' test images that the artefact turns into the target (the attack success)."""
    per_class_accuracy: tuple[float, ...]
    """Clean accuracy per class (NaN: a class without test images)."""


@dataclass(frozen=True)
class CompositeScore(Record):
    """How well one LRP composite points at the true artefact."""

    relevance_mass: float
    """Mean share of positive relevance inside the artefact's mask."""
    iou: float
    """Mean IoU of the LRP-located blob with the artefact's mask."""


@dataclass(frozen=True)
class Localisation(Record):
    """Each composite's localisation of the artefact on artefact-carrying training images of the target class."""

    n: int = 0
    """Images explained per composite; 0: the class had none (the file holds ``{}``)."""
    by_composite: dict[str, CompositeScore] = field(default_factory=dict)
    """Composite name -> its scores."""

    _COUNT: ClassVar[str] = "n"

    def to_json(self) -> dict[str, Any]:
        """``{"n": n, composite: scores, ...}``; ``{}`` where nothing was measured."""
        if not self.n:
            return {}
        return {self._COUNT: self.n} | {name: score.to_json() for name, score in self.by_composite.items()}

    @classmethod
    def from_json(cls, data: Any) -> Self:
        """Inverse of :meth:`to_json`."""
        scores = {k: CompositeScore.from_json(v) for k, v in data.items() if k != cls._COUNT}
        return cls(n=int(data.get(cls._COUNT, 0)), by_composite=scores)


@dataclass(frozen=True)
class RepairNumbers(Record):
    """A model's numbers before or after its repair."""

    accuracy: float
    """Top-1 accuracy on the clean test images."""
    clean_target_accuracy: float
    """Accuracy on the clean test images of the repaired class."""
    flip_rate: float
    """Share of the other classes' test images that the artefact still turns into the class."""


@dataclass(frozen=True)
class RepairResult(Record):
    """The repair (``fix --method inpaint``) of the audit's top class, before and after."""

    class_id: int
    """The class repaired (the audit's top class)."""
    before: RepairNumbers
    """Before the repair."""
    after: RepairNumbers
    """After it."""
    locate: dict[str, Any]
    """How the repair located the artefact (``fix``'s own numbers, kept as it wrote them)."""


@dataclass(frozen=True)
class JobResult(Record):
    """Everything one job found: the job as trained, its evaluation, every detector's result and the scoring.

    Its JSON is ``result.json``: :meth:`to_json` at the boundary, :meth:`from_json` to read one back.
    """

    id: str
    """The job's id (``m03-noise-t17``, ``c02``)."""
    manipulated: bool
    """Whether an artefact was planted."""
    target: int | None
    """The planted class; None for a clean control."""
    axes: dict[str, str]
    """Grid axis -> value (:attr:`BenchJob.axes`)."""
    recipe: dict[str, Any]
    """The recipe as trained (a retry has a seed of its own), as it was written: :attr:`job` reads it."""
    evaluation: JobEvaluation
    """The trained model's evaluation."""
    detectors: dict[str, DetectorResult]
    """Detector name -> its result: klugerhans' audit, its variants, the baselines."""
    run: str | None = field(default=None, metadata=OPTIONAL)
    """The folder of the training run kept (``run``, ``run-2`` after a retry); None: ``run``."""
    attempts: tuple[float, ...] | None = field(default=None, metadata=OPTIONAL)
    """The attack success (flip rate) of every training attempt (clean controls: 0)."""
    took: bool | None = field(default=None, metadata=OPTIONAL)
    """Whether the artefact took (the suite's ``min_attack_success``); None (files before retries): it counts."""
    localisation: Localisation | None = field(default=None, metadata=OPTIONAL)
    """Manipulated models: how each composite localises the artefact."""
    fix: RepairResult | None = field(default=None, metadata=OPTIONAL)
    """Manipulated models of a suite that repairs: the repair."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per stage (``train``, ``audit``, each baseline, ...) and ``total``."""

    @classmethod
    def of(cls, job: BenchJob, evaluation: JobEvaluation, detectors: dict[str, DetectorResult], **rest: Any) -> Self:
        """The result of ``job`` as trained; ``rest`` sets the other fields."""
        return cls(
            id=job.id, manipulated=job.manipulated, target=job.target, axes=dict(job.axes),
            recipe=job.recipe.to_dict(), evaluation=evaluation, detectors=detectors, **rest,
        )  # fmt: skip

    @property
    def job(self) -> BenchJob:
        """The job as trained (its recipe's seed is a retry's)."""
        return BenchJob(id=self.id, recipe=TrainConfig.from_dict(self.recipe), axes=dict(self.axes))

    @property
    def counts(self) -> bool:
        """Whether the model counts in the headline: a control, or its artefact took."""
        return self.took is not False

    def run_dir(self, folder: Path) -> Path:
        """The training run kept, in the job's folder ``folder``."""
        return folder / (self.run or FIRST_RUN)
