"""Audit: find shortcut learning (Clever Hans) without being told where it is, and measure explanation quality.

Discovery (no knowledge of the shortcut): SpRAy (:mod:`~klugerhans.audit.spray`) and the relevance-guided
transplant test (:mod:`~klugerhans.audit.transplant`) per class, ranked in :mod:`~klugerhans.audit.ranking`.
Verification where the ground truth is known: localisation (:mod:`~klugerhans.audit.localisation`), faithfulness
(:mod:`~klugerhans.audit.faithfulness`) and the randomisation sanity check (:mod:`~klugerhans.audit.sanity`) for
every attribution method in :mod:`~klugerhans.audit.methods`. :func:`compute_audit` runs everything;
:func:`run_audit` (:mod:`~klugerhans.audit.report`) also writes ``audit.json`` and ``report.html``.
"""

from klugerhans.audit.api import audit_model, dataset_images
from klugerhans.audit.config import AuditConfig
from klugerhans.audit.faithfulness import aopc, region_order, region_perturbation, uniform_fill
from klugerhans.audit.localisation import (
    localisation_scores,
    pointing_game,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
)
from klugerhans.audit.methods import (
    DEFAULT_METHODS,
    METHODS,
    MethodOptions,
    attribute,
    available_methods,
    make_attributor,
    register_method,
)
from klugerhans.audit.probes import DEFAULT_PROBES, PROBES, best_windows
from klugerhans.audit.ranking import Ranking, rank_classes
from klugerhans.audit.report import run_audit, write_audit
from klugerhans.audit.run import AuditResult, audit_classifier, compute_audit
from klugerhans.audit.sanity import randomized_models, sanity_check, spearman_rows
from klugerhans.audit.spray import SprayConfig, SprayResult, spray_class, tsne_view
from klugerhans.audit.thresholds import ShippedThreshold, shipped_threshold
from klugerhans.audit.transplant import TransplantConfig, TransplantResult, transplant_class

__all__ = [
    "DEFAULT_METHODS",
    "DEFAULT_PROBES",
    "METHODS",
    "PROBES",
    "AuditConfig",
    "AuditResult",
    "MethodOptions",
    "Ranking",
    "ShippedThreshold",
    "SprayConfig",
    "SprayResult",
    "TransplantConfig",
    "TransplantResult",
    "aopc",
    "attribute",
    "audit_classifier",
    "audit_model",
    "available_methods",
    "best_windows",
    "compute_audit",
    "dataset_images",
    "localisation_scores",
    "make_attributor",
    "pointing_game",
    "randomized_models",
    "rank_classes",
    "region_order",
    "region_perturbation",
    "register_method",
    "relevance_mass_accuracy",
    "relevance_rank_accuracy",
    "run_audit",
    "sanity_check",
    "shipped_threshold",
    "spearman_rows",
    "spray_class",
    "transplant_class",
    "tsne_view",
    "uniform_fill",
    "write_audit",
]
