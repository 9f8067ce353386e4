"""Exceptions shared by the faml_tomo compute packages.

Compute code raises :class:`InputError` (a ``ValueError``) for bad
parameters or data, with a message that names the problem.  The command line
turns it into an exit code and a one-line message; protocols reuse the same
checks in ``_validate``.
"""

__all__ = ["FamlTomoError", "InputError", "CheckpointMismatch"]


class FamlTomoError(Exception):
    """Base class of all faml_tomo errors."""


class InputError(FamlTomoError, ValueError):
    """A parameter, file or array that cannot be used; the message says why."""


class CheckpointMismatch(InputError):
    """A checkpoint in the output folder was written for other data or
    settings: the run cannot resume from it (restart, or use another folder)."""
