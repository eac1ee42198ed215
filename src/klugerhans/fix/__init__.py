"""Unlearning a shortcut that LRP located: ``klugerhans fix``.

:func:`locate_artefacts` cuts the artefact out of the model's own heatmaps; the methods of :data:`FIX_METHODS`
repair the model from those masks (never from ground truth); :func:`compute_fix` measures before and after and
:func:`write_fix` writes the repaired weights and the report.
"""

import warnings

from klugerhans.fix.inpaint import inpaint
from klugerhans.fix.locate import LocateConfig, LocatedArtefacts, locate_artefacts
from klugerhans.fix.methods import FIX_METHODS, FixInputs, FixOutcome, register_fix
from klugerhans.fix.run import FixConfig, FixResult, NothingToRepair, compute_fix, suspect_class

__all__ = [
    "FIX_METHODS",
    "FixConfig",
    "FixInputs",
    "FixOutcome",
    "FixResult",
    "LocateConfig",
    "LocatedArtefacts",
    "NothingToRepair",
    "compute_fix",
    "inpaint",
    "locate_artefacts",
    "register_fix",
    "suspect_class",
    "write_fix",
]


_RENAMED = {"locate_artifacts": "locate_artefacts", "LocatedArtifacts": "LocatedArtefacts"}
"""Old spellings of public names -> today's; they still work, with a DeprecationWarning."""


def __getattr__(name: str) -> object:
    # The report pulls in matplotlib; import it only when asked for.
    if name == "write_fix":
        from klugerhans.fix.report import write_fix

        return write_fix
    if name in _RENAMED:
        warnings.warn(f"klugerhans.fix.{name} is now {_RENAMED[name]}", DeprecationWarning, stacklevel=2)
        return globals()[_RENAMED[name]]
    raise AttributeError(name)
