"""The one exception type a user can cause: the CLI prints its message and exits with its code."""

from __future__ import annotations

__all__ = ["MedicoError"]


class MedicoError(Exception):
    """An error caused by input (a file, an option, a plugin) rather than by a bug in medico.

    The message names the file or argument, what was expected and what was found. ``exit_code`` is what the
    command line exits with (2: usage or input error; subclasses may choose another, e.g. 1 for an invalid
    submission).
    """

    exit_code: int = 2
