"""The one exception type a user can cause, and the one note: the CLI prints either on one line."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["MedicoError", "MedicoWarning", "describe_error", "some"]

MAX_FOREIGN_MESSAGE = 300
"""Characters of another library's error message kept in ours (some print whole tensors)."""


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


def some(names: Sequence[str], limit: int = 3) -> str:
    """The first ``limit`` of ``names`` for a message, and how many more there are: ``a, b, c and 4 more``."""
    shown = ", ".join(names[:limit])
    return f"{shown} and {len(names) - limit} more" if len(names) > limit else shown


def describe_error(error: BaseException) -> str:
    """An exception raised by code medico calls (a plugin's), on one line: its type and its message, capped."""
    message = " ".join(str(error).split())
    if len(message) > MAX_FOREIGN_MESSAGE:
        message = message[: MAX_FOREIGN_MESSAGE - 3] + "..."
    return f"{type(error).__name__}: {message}" if message else type(error).__name__
