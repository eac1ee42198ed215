"""Detection measured across many models: a seeded grid of manipulated and clean models, klugerhans' audit and the
detectors a user would pick instead (adversarial-robustness-toolbox's), model-level metrics and thresholds set on
clean models only.

Modules: :mod:`~klugerhans.bench.grid` (suites and jobs), :mod:`~klugerhans.bench.run` (one job end to end),
:mod:`~klugerhans.bench.baselines` (the ART detectors), :mod:`~klugerhans.bench.neural_cleanse` (Neural Cleanse,
registered as a baseline when this package is imported), :mod:`~klugerhans.bench.metrics` (AUROC, FPR, TPR, top-1,
the null-distribution threshold), :mod:`~klugerhans.bench.summary` (``bench.json`` and the report).
"""

from klugerhans.bench.grid import ARTEFACTS, SUITES, BenchJob, SuiteConfig, make_suite, register_suite
from klugerhans.bench.metrics import ModelOutcome, Threshold, detection_metrics, null_threshold, roc_auc
from klugerhans.bench.neural_cleanse import CleanseConfig, reverse_trigger, reverse_triggers
from klugerhans.bench.run import RunOptions, run_job
from klugerhans.bench.summary import summarize_suite, write_bench

__all__ = [
    "ARTEFACTS",
    "SUITES",
    "BenchJob",
    "CleanseConfig",
    "ModelOutcome",
    "RunOptions",
    "SuiteConfig",
    "Threshold",
    "detection_metrics",
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
