"""User-facing errors.

Every problem a user can cause (bad path, malformed file, invalid option) is raised as a
:class:`KlugerhansError` whose message is one line saying what is wrong and what to do. The CLI prints it
without a traceback and exits non-zero; library users can catch it.
"""

from __future__ import annotations


class KlugerhansError(Exception):
    """An error caused by input the user controls; ``str(err)`` is a one-line, actionable message."""

    exit_code: int = 2


class DataError(KlugerhansError):
    """Missing, incomplete or malformed dataset files."""


class CheckpointError(KlugerhansError):
    """A model file that cannot be loaded safely or does not match what was asked for."""


class ImageError(KlugerhansError):
    """An image file that cannot be decoded or is unreasonable (empty, truncated, too large)."""
