"""The one exception type a user can cause, and the one note: the CLI prints either on one line."""

from __future__ import annotations

__all__ = ["MedicoError", "MedicoWarning"]


class MedicoError(Exception):
    """An error caused by input (a file, an option, a plugin) rather than by a bug in medico.

    The message names the file or argument, what was expected and what was found. ``exit_code`` is what the
    command line exits with (2: usage or input error; subclasses may choose another, e.g. 1 for an invalid
    submission).
    """

    exit_code: int = 2


class MedicoWarning(UserWarning):
    """Something a user should know that does not stop the command (e.g. ``latest`` skipped a failed run).

    Library code raises it with :func:`warnings.warn`; the command line prints it as a note on stderr.
    """
