"""What a participant hands the leaderboard, made safe: team names, run numbers and free text.

A team name is refused unless it is plain (it becomes a folder, part of a file name and a table cell). A run
number is refused outside its range (SQLite stores at most a signed 64-bit integer). Free text (a model name from a
manifest, a note, a citation...) is never refused but neutralised, so no terminal, spreadsheet or page shows it raw:
every control, format (bidi overrides, zero-width characters), line or paragraph separator and surrogate character
becomes its Python escape, shown as text (``\\x1b``, ``\\u202e``, ``\\n``), and a long text is cut to a cap ending in
``…``. :class:`medico.leaderboard.Entry` applies these to every row; submission names and the run config ask the
same functions.
"""

from __future__ import annotations

import unicodedata

from medico.leaderboard.errors import LeaderboardError

__all__ = [
    "MAX_RUN_NUMBER",
    "MAX_TEAM_NAME",
    "MAX_TEXT",
    "RunNumberError",
    "TeamNameError",
    "check_run_number",
    "check_team_name",
    "plain_text",
]

MAX_TEAM_NAME = 64
MAX_TEXT = 400
"""The longest free text an entry keeps (the published citations are under 400 characters)."""
MAX_RUN_NUMBER = 2**63 - 1
"""The largest run number anything stores (SQLite's largest integer)."""

_UNSHOWN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})  # control, format (bidi, zero-width), surrogate, separators
_FORBIDDEN_IN_NAMES = frozenset('/\\:<>"|?*')
_ELLIPSIS = "…"


class TeamNameError(LeaderboardError):
    """A team name that cannot safely become a folder, a file name and a leaderboard cell."""


class RunNumberError(LeaderboardError):
    """A run number that is taken, out of range, or beyond the team's allowance."""


def _unshown(char: str) -> bool:
    return unicodedata.category(char) in _UNSHOWN


def plain_text(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` with every unshown character (control, format, surrogate, line or paragraph separator) written as its
    escape (``\\x1b``), cut to at most ``limit`` characters ending in ``…``; text without them is returned unchanged.

    Example:
        >>> plain_text("\\x1b[31mred\\u202e")
        '\\\\x1b[31mred\\\\u202e'
        >>> plain_text("a" * 10, limit=4)
        'aaa…'
    """
    pieces = [ascii(char)[1:-1] if _unshown(char) else char for char in text[: limit + 1]]
    if sum(map(len, pieces)) <= limit and len(text) <= limit:
        return "".join(pieces)
    kept, length = [], 0
    for piece in pieces:  # cut between characters, never inside an escape
        if length + len(piece) > limit - len(_ELLIPSIS):
            break
        kept.append(piece)
        length += len(piece)
    return "".join(kept) + _ELLIPSIS


def _shown(text: str) -> str:
    """``text`` quoted for an error message, escapes and all, and shortened when long."""
    return repr(text) if len(text) <= 2 * MAX_TEAM_NAME else repr(text[: 2 * MAX_TEAM_NAME]) + _ELLIPSIS


def check_team_name(team: str, label: str = "--team") -> str:
    """``team`` unchanged when it is a plain name; otherwise a :class:`TeamNameError` naming ``label`` and the fault.

    A plain name has 1 to :data:`MAX_TEAM_NAME` characters, no path separator or character Windows refuses in file
    names (``/ \\ : < > " | ? *``), no unshown character (see :func:`plain_text`), no leading dot, no ``..`` and no
    white space at either end, and is written in its NFKC form: two names that look alike because one uses a
    compatibility character (a no-break space, full-width letters, a ligature) or a decomposed accent are refused
    rather than shown as two teams that read the same. Names are compared exactly: ``Team`` and ``team`` are two
    teams (and ``Team`` in Latin and in Cyrillic letters too): the organiser's ``--team`` is a team's identity.
    """
    problem = None
    bad = sorted({c for c in team if c in _FORBIDDEN_IN_NAMES or _unshown(c)})
    if not team:
        problem = "it is empty"
    elif len(team) > MAX_TEAM_NAME:
        problem = f"it has {len(team)} characters (at most {MAX_TEAM_NAME})"
    elif bad:
        problem = f"it contains {', '.join(repr(c) for c in bad)} (no path separators or control characters)"
    elif team.startswith("."):
        problem = "it starts with a dot"
    elif ".." in team:
        problem = "it contains '..'"
    elif team != team.strip():
        problem = "it starts or ends with white space"
    elif (normal := unicodedata.normalize("NFKC", team)) != team:
        problem = f"it uses compatibility or decomposed characters (its plain form is {_shown(normal)})"
    if problem:
        raise TeamNameError(f"{label} {_shown(team)}: expected a plain name (letters, digits, '-', '_'), but {problem}")
    return team


def check_run_number(run: int, label: str = "--run", highest: int = MAX_RUN_NUMBER) -> int:
    """``run`` unchanged when it is in 1..``highest`` (at most :data:`MAX_RUN_NUMBER`); else a RunNumberError."""
    highest = min(highest, MAX_RUN_NUMBER)
    if not 1 <= run <= highest:
        raise RunNumberError(f"{label} {run}: expected a number from 1 to {highest}")
    return run
