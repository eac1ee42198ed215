"""Detection measured across many models: a seeded grid of manipulated and clean models, klugerhans' audit and the
detectors a user would pick instead (adversarial-robustness-toolbox's), model-level metrics and thresholds set on
clean models only.

Modules: :mod:`~klugerhans.bench.grid` (suites and jobs), :mod:`~klugerhans.bench.run` (one job end to end),
:mod:`~klugerhans.bench.baselines` (the ART detectors), :mod:`~klugerhans.bench.neural_cleanse` (Neural Cleanse,
registered as a baseline when this package is imported), :mod:`~klugerhans.bench.statistics` (AUROC by ranks with its
bootstrap interval, the null-distribution threshold), :mod:`~klugerhans.bench.metrics` (AUROC, FPR, TPR, top-1 per
detector and axis), :mod:`~klugerhans.bench.results` (a job's ``result.json`` as :class:`JobResult`),
:mod:`~klugerhans.bench.summary` (``bench.json`` as :class:`BenchSummary`, and the report). Every result is a frozen
record (:mod:`~klugerhans.bench.records`) that becomes JSON only when a file is written.
"""

from klugerhans.bench.grid import ARTEFACTS, SUITES, BenchJob, SuiteConfig, make_suite, register_suite
from klugerhans.bench.metrics import (
    DetectionMetrics,
    ModelOutcome,
    Threshold,
    detection_metrics,
    null_threshold,
    roc_auc,
)
from klugerhans.bench.neural_cleanse import CleanseConfig, reverse_trigger, reverse_triggers
from klugerhans.bench.results import DetectorResult, JobResult
from klugerhans.bench.run import RunOptions, load_result, run_job
from klugerhans.bench.summary import BenchSummary, summarize_suite, write_bench

__all__ = [
    "ARTEFACTS",
    "SUITES",
    "BenchJob",
    "BenchSummary",
    "CleanseConfig",
    "DetectionMetrics",
    "DetectorResult",
    "JobResult",
    "ModelOutcome",
    "RunOptions",
    "SuiteConfig",
    "Threshold",
    "detection_metrics",
    "load_result",
    "make_suite",
    "null_threshold",
    "register_suite",
    "reverse_trigger",
    "reverse_triggers",
    "roc_auc",
    "run_job",
    "summarize_suite",
    "write_bench",
]
