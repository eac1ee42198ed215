"""klugerhans: show what an image classifier really learned.

Named after Clever Hans, the horse that seemed to count but read its trainer's face. The package trains
VGG11 classifiers on GTSRB (real or synthetic) with a sticker shortcut glued on one class and explains
their decisions with Layer-wise Relevance Propagation; ``load_user_model`` brings your own torchvision or timm
classifier and weights to the same tools; ``explain_model`` and ``audit_model`` take any ``nn.Module``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from klugerhans.errors import KlugerhansError
from klugerhans.version import __version__

__all__ = ["KlugerhansError", "__version__", "audit_model", "explain_model", "load_model", "load_user_model"]

if TYPE_CHECKING:
    from klugerhans.audit.api import audit_model
    from klugerhans.heatmaps.api import explain_model
    from klugerhans.models.checkpoint import load_model
    from klugerhans.models.user_weights import load_user_model


def __getattr__(name: str) -> Any:
    # Importing torch takes seconds; `klugerhans --help` and the data module should not pay for it.
    if name == "load_model":
        from klugerhans.models.checkpoint import load_model

        return load_model
    if name == "load_user_model":
        from klugerhans.models.user_weights import load_user_model

        return load_user_model
    if name == "explain_model":
        from klugerhans.heatmaps.api import explain_model

        return explain_model
    if name == "audit_model":
        from klugerhans.audit.api import audit_model

        return audit_model
    raise AttributeError(f"module 'klugerhans' has no attribute {name!r}")
