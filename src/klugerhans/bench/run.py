"""One benchmark job end to end: train, audit, baselines, localisation, repair; its numbers in ``result.json``.

Everything a job writes lives in ``OUT/jobs/<id>/``: the training run (``run/``, resumable), the repair (``fix/``)
and ``result.json``, written last and atomically. A job whose ``result.json`` exists is done and is not run again,
so an interrupted suite resumes where it stopped and a finished model is reused.

Detectors see what a user would hand them: the model and its training images as it saw them (artefacts glued,
dirty-label images relabelled), never the target class or the masks. Those are used afterwards, to score.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from klugerhans.audit.config import AuditConfig
from klugerhans.audit.localisation import relevance_mass_accuracy
from klugerhans.audit.probes import PROBES
from klugerhans.audit.run import audit_classifier
from klugerhans.bench.baselines import run_baselines
from klugerhans.bench.grid import BenchJob, SuiteConfig
from klugerhans.bench.results import (
    FIRST_RUN,
    TOTAL,
    CompositeScore,
    DetectorResult,
    JobEvaluation,
    JobResult,
    Localisation,
    RepairResult,
)
from klugerhans.defaults import DEFAULT_DEVICE
from klugerhans.explain.composites import COMPOSITES
from klugerhans.fix.locate import LocateConfig, blob_masks
from klugerhans.heatmaps.dataset import explain_dataset
from klugerhans.io import atomic_write_text
from klugerhans.models.checkpoint import load_classifier
from klugerhans.models.classifier import Classifier
from klugerhans.models.evaluation import evaluate_model
from klugerhans.models.recipe import TrainOptions
from klugerhans.models.training import train
from klugerhans.models.trainset import PreparedData, prepare_data
from klugerhans.progress import say

__all__ = ["PRIMARY", "VARIANTS", "RunOptions", "job_dir", "load_result", "run_job"]

PRIMARY = "klugerhans"
"""The detector name of klugerhans' own audit in results and ``bench.json``."""
VARIANTS: dict[str, dict[str, Any]] = {
    f"{PRIMARY}@window": {"probes": ("window",)},
    f"{PRIMARY}+pixels": {"probes": PROBES},
}
"""Audit settings measured beside the shipped audit (detector name -> changed :class:`AuditConfig` fields): the
window probe alone (compact artefacts only) and every probe (also the opt-in pixels probe)."""


@dataclass(frozen=True)
class RunOptions:
    """How jobs run (not what they are: that is the :class:`~klugerhans.bench.grid.BenchJob`)."""

    out: str
    """Suite folder: ``jobs/<id>/`` per model, ``bench.json``, ``report.html``."""
    device: str = DEFAULT_DEVICE
    """auto, cpu, cuda, cuda:N or mps."""
    baselines: tuple[str, ...] = ()
    """Baseline detectors to run (names of :data:`~klugerhans.bench.baselines.BASELINES`); empty: none."""
    n_localise: int = 32
    """Artefact-carrying training images of the target class explained per composite."""
    fix: bool = True
    """Repair each manipulated model (the suite's ``fix_epochs``) and measure before/after."""
    progress: bool = True
    """Say what runs on stderr."""
    rescore: bool = False
    """For finished jobs, run klugerhans' audit again (after the audit changed) and keep the rest of ``result.json``;
    the repair is redone only where the audit's top class changed, since it repairs that class."""


RESULT_FILE = "result.json"
"""A finished job's results, in its folder."""


def job_dir(out: str | Path, job: BenchJob) -> Path:
    """The folder of one job's files."""
    return Path(out) / "jobs" / job.id


def load_result(out: str | Path, job: BenchJob) -> JobResult | None:
    """A finished job's ``result.json``, or None."""
    path = job_dir(out, job) / RESULT_FILE
    return JobResult.from_json(json.loads(path.read_text())) if path.exists() else None


def _save(folder: Path, result: JobResult) -> JobResult:
    """Write ``result`` as ``result.json`` into the job's ``folder`` (atomically: the file marks the job done)."""
    atomic_write_text(folder / RESULT_FILE, json.dumps(result.to_json(), indent=1))
    return result


def _train(job: BenchJob, run: Path, options: RunOptions) -> Classifier:
    best = run / "best.safetensors"
    if not best.exists():
        run_options = TrainOptions(out=str(run), device=options.device, progress=False)
        train(job.recipe, run_options, resume=(run / "train_state.pt").exists())
    return load_classifier(best, device=options.device)


def _detector(scores: Mapping[int, float], flagged: Iterable[int], **extra: Any) -> DetectorResult:
    """A detector's result, its class ids and scores as plain Python numbers (they may come as NumPy's)."""
    return DetectorResult({int(c): float(v) for c, v in scores.items()}, tuple(int(c) for c in flagged), **extra)


def _audits(clf: Classifier, prepared: PreparedData, suite: SuiteConfig, job: BenchJob) -> dict[str, DetectorResult]:
    """klugerhans' audit as it ships (:data:`PRIMARY`) and, if the suite asks, each of :data:`VARIANTS`."""
    settings = {PRIMARY: {}, **(VARIANTS if suite.variants else {})}
    return {name: _audit(clf, prepared, suite, job, **change) for name, change in settings.items()}


def _audit(clf: Classifier, prepared: PreparedData, suite: SuiteConfig, job: BenchJob, **change: Any) -> DetectorResult:
    config = AuditConfig(
        checkpoint=job.id, data=job.recipe.data, split="train", artefacts=False, methods=(), n_sanity=0,
        tsne_classes=0, max_per_class=suite.audit_per_class, seed=job.recipe.seed, progress=False, **change,
    )  # fmt: skip
    start = time.perf_counter()
    result = audit_classifier(clf, prepared.train, config)
    ranking = result.ranking
    return _detector(
        ranking.scores,
        ranking.flagged,
        seconds=time.perf_counter() - start,
        threshold=ranking.threshold,
        order=tuple(int(c) for c in ranking.order),
        probe={int(c): r.probe for c, r in result.transplant.items()},
        by_probe={int(c): r.by_probe for c, r in result.transplant.items()},
    )


def _localise(clf: Classifier, prepared: PreparedData, target: int, n: int, seed: int) -> Localisation:
    """Each composite's relevance mass inside the true artefact, and the IoU of the LRP-located blob with it."""
    masks = prepared.train_masks
    rows = np.flatnonzero(masks.any(axis=(1, 2)) & (prepared.train.labels == target))
    rows = np.sort(np.random.default_rng(seed).permutation(rows)[:n])
    if len(rows) == 0:
        return Localisation()
    scores: dict[str, CompositeScore] = {}
    for name in sorted(COMPOSITES):
        images = prepared.train.images[rows]
        expl = explain_dataset(clf.model, images, targets=target, composite=name, norm=clf.meta.normalization)
        relevance = expl.relevance.numpy()
        located = blob_masks(relevance, LocateConfig())
        truth = masks[rows]
        iou = (located & truth).sum((1, 2)) / np.maximum((located | truth).sum((1, 2)), 1)
        scores[name] = CompositeScore(
            relevance_mass=float(relevance_mass_accuracy(relevance, truth).mean()), iou=float(iou.mean())
        )
    return Localisation(n=len(rows), by_composite=scores)


def _repair(
    job: BenchJob, run: Path, folder: Path, suite: SuiteConfig, class_id: int, options: RunOptions
) -> RepairResult:
    from klugerhans.fix.run import FixConfig, compute_fix

    config = FixConfig(
        checkpoint=str(run / "best.safetensors"), method="inpaint", data=job.recipe.data, out=str(folder),
        class_id=class_id, epochs=suite.fix_epochs, device=options.device, seed=job.recipe.seed, progress=False,
        audit_per_class=max(5, suite.audit_per_class // 2),
    )  # fmt: skip
    # fix's numbers hold more than a bench result keeps: the record reads its own fields and leaves the rest
    return RepairResult.from_json(compute_fix(config).to_json())


RESEED = 100_000
"""Added to a manipulated model's seed once per retry (far from the seeds of other jobs of the suite)."""


def _train_until_it_takes(
    job: BenchJob, folder: Path, suite: SuiteConfig, options: RunOptions
) -> tuple[BenchJob, Path, Classifier, PreparedData, JobEvaluation, list[float]]:
    """Train ``job``; while its artefact turns fewer than ``suite.min_attack_success`` of the other classes' test
    images into the target, train it again with the next seed, up to ``suite.max_attempts`` trainings in all.

    Returns:
        The job as last trained (its recipe's seed), its run folder, model, data and evaluation, and the attack
        success (flip rate) of every attempt.
    """
    attempts: list[float] = []
    tries = suite.max_attempts if job.manipulated else 1
    for attempt in range(tries):
        if attempt:
            say("bench", f"{job.id}: the artefact turned {attempts[-1]:.0%} of signs, under the suite's "
                f"{suite.min_attack_success:.0%}: training again with another seed", options.progress)  # fmt: skip
        tried = replace(job, recipe=replace(job.recipe, seed=job.recipe.seed + RESEED * attempt))
        run = folder / (FIRST_RUN if attempt == 0 else f"{FIRST_RUN}-{attempt + 1}")
        say(
            "bench",
            f"{job.id}: training" + (f" (attempt {attempt + 1} of {tries})" if attempt else ""),
            options.progress,
        )
        clf = _train(tried, run, options)
        prepared = prepare_data(tried.recipe)
        # evaluate_model's numbers hold more than a job keeps: the record reads its own fields and leaves the rest
        evaluation = JobEvaluation.from_json(
            evaluate_model(clf, prepared.test, tried.recipe.sticker, seed=tried.recipe.seed).to_json()
        )
        attempts.append(evaluation.flip_rate if job.manipulated else 0.0)
        if not job.manipulated or attempts[-1] >= suite.min_attack_success:
            break
    return tried, run, clf, prepared, evaluation, attempts


def run_job(job: BenchJob, suite: SuiteConfig, options: RunOptions) -> JobResult:
    """Run (or reuse) one job and return its result (what its ``result.json`` holds).

    Stages: train (resumes an interrupted run), the audit on the training images, the baselines on the same images,
    then, for manipulated models only, scoring against the truth: localisation per composite and the repair.
    """
    done = load_result(options.out, job)
    if done is not None:
        done = _rescore(suite, options, done) if options.rescore else done
        return _complete(suite, options, done)
    folder = job_dir(options.out, job)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    job, run, clf, prepared, evaluation, attempts = _train_until_it_takes(job, folder, suite, options)
    timings["train"] = time.perf_counter() - start
    say("bench", f"{job.id}: audit", options.progress)
    t = time.perf_counter()
    detectors = _audits(clf, prepared, suite, job)
    timings["audit"] = time.perf_counter() - t
    found = _baselines(clf, prepared, job, suite, options.baselines, options.progress)
    detectors.update(found)
    timings.update(_seconds(found))
    localisation, fix = None, None
    if job.target is not None:
        t = time.perf_counter()
        localisation = _localise(clf, prepared, job.target, options.n_localise, job.recipe.seed)
        timings["localisation"] = time.perf_counter() - t
        if options.fix and suite.fix_epochs > 0:
            say("bench", f"{job.id}: repair", options.progress)
            t = time.perf_counter()
            top = detectors[PRIMARY].top_class
            fix = _repair(job, run, folder / "fix", suite, job.target if top is None else top, options)
            timings["fix"] = time.perf_counter() - t
    total = round(time.perf_counter() - start, 2)
    result = JobResult.of(
        job, evaluation, detectors, run=run.name, attempts=tuple(attempts),
        took=not job.manipulated or attempts[-1] >= suite.min_attack_success, localisation=localisation, fix=fix,
        timings={k: round(v, 2) for k, v in timings.items()} | {TOTAL: total},
    )  # fmt: skip
    say("bench", f"{job.id}: done in {total:.0f} s", options.progress)
    return _save(folder, result)


def _seconds(found: dict[str, DetectorResult]) -> dict[str, float]:
    """Each detector's seconds, for a job's timings."""
    return {name: d.seconds for name, d in found.items() if d.seconds is not None}


def _baselines(
    clf: Classifier, prepared: PreparedData, job: BenchJob, suite: SuiteConfig, names: tuple[str, ...], progress: bool
) -> dict[str, DetectorResult]:
    """The baseline detectors ``names`` on the job's training images."""
    if not names:
        return {}
    say("bench", f"{job.id}: baselines {', '.join(names)}", progress)
    found = run_baselines(
        clf.model, prepared.train.images, prepared.train.labels, clf.meta.normalization,
        names=names, seed=job.recipe.seed, device=str(clf.device),
        settings={"neural_cleanse": {"steps": suite.cleanse_steps, "group": suite.cleanse_group}},
    )  # fmt: skip
    return {name: _detector(r.scores, r.flagged, note=r.note, seconds=r.seconds) for name, r in found.items()}


def _trained(options: RunOptions, done: JobResult) -> tuple[BenchJob, Path, Path, Classifier, PreparedData]:
    """A finished job as trained (a retry has a seed of its own): the job, its folder and run, model and data."""
    job = done.job
    folder = job_dir(options.out, job)
    run = done.run_dir(folder)
    clf = load_classifier(run / "best.safetensors", device=options.device)
    return job, folder, run, clf, prepare_data(job.recipe)


def _complete(suite: SuiteConfig, options: RunOptions, done: JobResult) -> JobResult:
    """``done`` with the baselines of ``options`` that it lacks run on the job's trained model.

    A suite can so run in two passes that resume separately: ``--baselines ''`` trains and audits every model, a
    later run with the baselines adds them to the finished jobs (on the takes suite the baselines cost three times
    what training and the audit do).
    """
    missing = tuple(name for name in options.baselines if name not in done.detectors)
    if not missing:
        return done
    job, folder, _, clf, prepared = _trained(options, done)
    found = _baselines(clf, prepared, job, suite, missing, options.progress)
    seconds = _seconds(found)
    timings = done.timings | {name: round(s, 2) for name, s in seconds.items()}
    timings[TOTAL] = round(done.timings.get(TOTAL, 0.0) + sum(seconds.values()), 2)
    return _save(folder, replace(done, detectors=done.detectors | found, timings=timings))


def _rescore(suite: SuiteConfig, options: RunOptions, done: JobResult) -> JobResult:
    """``done`` with klugerhans' audit run again on the job's trained model (and its repair, if the top class moved)."""
    say("bench", f"{done.id}: audit again", options.progress)
    job, folder, run, clf, prepared = _trained(options, done)
    t = time.perf_counter()
    audits = _audits(clf, prepared, suite, job)
    timings = done.timings | {"audit": round(time.perf_counter() - t, 2)}
    top = audits[PRIMARY].top_class
    top = job.target if top is None else top
    fix = done.fix
    if fix is not None and top is not None and top != fix.class_id:
        say("bench", f"{job.id}: repair of the new top class {top}", options.progress)
        t = time.perf_counter()
        fix = _repair(job, run, folder / "fix", suite, top, options)
        timings["fix"] = round(time.perf_counter() - t, 2)
    return _save(folder, replace(done, detectors=done.detectors | audits, timings=timings, fix=fix))
