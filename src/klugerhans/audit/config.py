"""Settings of a whole audit (``klugerhans audit``)."""

from __future__ import annotations

from dataclasses import dataclass

from klugerhans.audit.methods import DEFAULT_METHODS, check_methods
from klugerhans.audit.probes import DEFAULT_PROBES, check_probes
from klugerhans.audit.ranking import DEFAULT_ALPHA
from klugerhans.audit.sanity import Mode
from klugerhans.audit.transplant import RECIPIENTS, Placement
from klugerhans.defaults import DEFAULT_DATA, DEFAULT_DEVICE, DEFAULT_FALLBACK
from klugerhans.errors import KlugerhansError
from klugerhans.explain.composites import COMPOSITES, DEFAULT_COMPOSITE, Fallback

__all__ = ["EXPLAIN_PIXELS", "PREDICT_PIXELS", "AuditConfig", "batch_for"]


EXPLAIN_PIXELS = 64 * 32 * 32
"""Default explanation batch, in pixels: 64 images at 32 px. LRP keeps every layer's input of a batch, so at 224 px a
batch of 64 ResNet-50 inputs held 10 GB; the batch shrinks with the image area instead."""
PREDICT_PIXELS = 256 * 32 * 32
"""Default prediction batch, in pixels: 256 images at 32 px."""


def batch_for(size: int, pixels: int = EXPLAIN_PIXELS, batch_size: int | None = None) -> int:
    """``batch_size`` if given, else as many ``size`` px images as fit in ``pixels`` (at least 2)."""
    return batch_size if batch_size is not None else max(2, pixels // (size * size))


@dataclass(frozen=True)
class AuditConfig:
    """Everything that determines an audit; written into ``audit.json``."""

    checkpoint: str
    """Checkpoint file, run directory or released-weights name."""
    data: str = DEFAULT_DATA
    """Registered dataset: "gtsrb", "synthetic" or "folder" (an ImageFolder tree)."""
    data_dir: str | None = None
    """The data's folder (GTSRB, or the image folder)."""
    out: str = "klugerhans-audit"
    """Output folder: report.html/.md, audit.json, figures/."""
    split: str = "test"
    """Split to audit: "test", "val" (a folder's own val/, else the validation part of the training split, drawn
    exactly as in training) or "train" (the training images: where a shortcut the model learned is in the data)."""
    artefacts: bool = True
    """Glue the checkpoint's training stickers on the audited split as in training (the data as the model saw it:
    a Clever Hans artefact lives in the data). Discovery never sees which class or pixels were manipulated.
    False audits the images as given; data with classes of its own (an image folder) is always audited as given (its
    files are the data, and the sticker names a GTSRB class)."""
    max_images: int | None = None
    """Audit at most this many images (class-balanced), for quick runs."""
    seed: int = 0
    """Seed of every random choice."""
    device: str = DEFAULT_DEVICE
    """auto, cpu, cuda, cuda:N or mps."""
    composite: str = DEFAULT_COMPOSITE
    """LRP composite of the discovery stages (SpRAy, transplant)."""
    fallback: Fallback = DEFAULT_FALLBACK
    """An operation without an LRP rule: "error" stops with a one-line error naming it and its module path;
    "gradient" propagates relevance through it as gradient x input (in every LRP explainer of the audit) and the
    report states the share of operations with a rule (``discovery.lrp_rule_share``, ``discovery.fallback_ops``)."""
    batch_size: int | None = None
    """Images per explanation pass; None: :func:`batch_for` the image size (64 at 32 px, 2 at 224 px)."""
    threshold: float | None = None
    """Hijack rate at which a class is flagged if also significant (see :mod:`klugerhans.audit.ranking`); None: the
    shipped threshold of the placement, set on the benchmark's clean models (:mod:`klugerhans.audit.thresholds`)."""
    alpha: float = DEFAULT_ALPHA
    """Family-wise significance level of the flagging test."""
    methods: tuple[str, ...] = DEFAULT_METHODS
    """Attribution methods compared (localisation, faithfulness, sanity); empty to skip the comparison."""
    max_per_class: int | None = 100
    """Explain at most this many correctly classified images per class for discovery (a seeded random sample;
    None: all). 100 heatmaps show a class's strategies and give the transplant test ample donors, and keep a whole
    12,630-image GTSRB test set within 15 minutes on a 2-core CPU; raise it to find strategies used by few images."""
    patch: float = 0.25
    """Transplant patch side as a share of the image side."""
    recipients: int = RECIPIENTS
    """Recipient images per class in the transplant test."""
    placement: Placement = "random"
    """Where the window probe pastes: "random" (anywhere in the recipient's sign box; the whole image where there is
    no box), "same" (where it was cut) or "auto" ("same" on photos without object boxes, else "random"). Whatever it
    is, the "place" probe pastes where the window was cut (:mod:`klugerhans.audit.probes`)."""
    probes: tuple[str, ...] = DEFAULT_PROBES
    """Transplant probes (:mod:`klugerhans.audit.probes`): "window" (compact artefacts anywhere), "place" (the window
    where it was cut: frames, corner tags), "colour" (global ones, such as a colour cast) and, opt-in, "pixels" (thin
    or spread ones; it also carries a class's own shape); a class scores its best probe."""
    spray_grid: int = 8
    """SpRAy downsamples heatmaps to this grid."""
    tsne_classes: int = 4
    """Draw t-SNE views and prototypes for this many of the most suspicious classes (plus every flagged one)."""
    n_localisation: int = 32
    """Stickered images flipped to the sticker class that the methods explain for the localisation metrics."""
    n_faithfulness: int = 32
    """Correctly classified images for pixel flipping / AOPC."""
    flip_steps: int = 16
    """Regions removed in pixel flipping (of (S / region)^2)."""
    flip_region: int = 4
    """Side of the pixel-flipping regions in pixels."""
    n_sanity: int = 4
    """Images for the randomisation sanity check (0 skips it)."""
    sanity: Mode = "cascading"
    """Randomisation: "cascading" (output layer down, cumulative) or "independent" (one layer at a time)."""
    virelay: bool = False
    """Also export the discovery heatmaps for ViRelAy (needs h5py)."""
    progress: bool = True
    """Progress bars and stage messages on stderr."""

    def explain_batch(self, size: int) -> int:
        """Images per explanation pass for ``size`` px images: :attr:`batch_size`, else :func:`batch_for` ``size``."""
        return batch_for(size, batch_size=self.batch_size)

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", check_methods(tuple(self.methods)))
        object.__setattr__(self, "probes", check_probes(tuple(self.probes)))
        checks = [
            (bool(self.checkpoint), "give a checkpoint (--checkpoint FILE or RUN_DIR)"),
            (bool(self.out), "give an output folder (--out DIR)"),
            (self.split in ("test", "val", "train"), f"split must be 'test', 'val' or 'train', got {self.split!r}"),
            (self.max_images is None or self.max_images >= 1, f"max images must be positive, got {self.max_images}"),
            (self.max_per_class is None or self.max_per_class >= 3, "max per class must be at least 3"),
            (self.batch_size is None or self.batch_size >= 1, f"batch size must be at least 1, got {self.batch_size}"),
            (
                self.threshold is None or 0.0 < self.threshold <= 1.0,
                f"threshold must be in (0, 1] (a hijack rate), got {self.threshold}",
            ),
            (0.0 < self.alpha < 1.0, f"alpha must be in (0, 1), got {self.alpha}"),
            (0.0 < self.patch <= 0.5, f"patch must be in (0, 0.5] of the image side, got {self.patch}"),
            (self.recipients >= 1, f"recipients must be at least 1, got {self.recipients}"),
            (
                self.placement in ("auto", "random", "same"),
                f"placement must be 'auto', 'random' or 'same', got {self.placement!r}",
            ),
            (self.spray_grid >= 2, f"SpRAy grid must be at least 2, got {self.spray_grid}"),
            (self.tsne_classes >= 0, "t-SNE classes must be >= 0"),
            (self.n_localisation >= 0 and self.n_faithfulness >= 0 and self.n_sanity >= 0, "image counts must be >= 0"),
            (self.flip_steps >= 1 and self.flip_region >= 1, "flip steps and region must be at least 1"),
            (
                self.sanity in ("cascading", "independent"),
                f"sanity must be cascading or independent, not {self.sanity!r}",
            ),
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            (
                self.fallback in ("error", "gradient"),
                f"fallback must be 'error' or 'gradient', got {self.fallback!r}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise KlugerhansError(message)
        if self.composite not in COMPOSITES:
            raise KlugerhansError(
                f"unknown composite {self.composite!r}: choose one of {', '.join(sorted(COMPOSITES))}"
            )
