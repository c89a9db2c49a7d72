"""Team names and run numbers: a team name becomes one folder and part of a file name, never a path."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Literal

from medico.errors import MedicoError

__all__ = [
    "MAX_RUNS",
    "MAX_TEAM_NAME",
    "TASK_NUMBERS",
    "RunNumberError",
    "Task",
    "TeamNameError",
    "check_team_name",
    "choose_run",
    "existing_runs",
    "run_name",
    "team_dir",
]

Task = Literal["segmentation", "efficiency"]
TASK_NUMBERS: dict[str, int] = {"segmentation": 1, "efficiency": 2}
MAX_TEAM_NAME = 64
MAX_RUNS = 5
"""The challenge rule: at most five runs per team and task."""

_FORBIDDEN = set('/\\:<>"|?*')


class TeamNameError(MedicoError):
    """A team name that cannot safely become a folder and file name."""


class RunNumberError(MedicoError):
    """A run number that is taken, out of range, or beyond the team's allowance."""


def check_team_name(team: str) -> str:
    """``team`` unchanged when it is a plain name; otherwise a :class:`TeamNameError` saying what is wrong."""
    problem = None
    bad = sorted({c for c in team if c in _FORBIDDEN or unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp")})
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
    if problem:
        raise TeamNameError(f"--team {team!r}: expected a plain name (letters, digits, '-', '_'), but {problem}")
    return team


def team_dir(root: Path, team: str) -> Path:
    """The team's folder ``root/TEAM`` (the name checked first)."""
    return Path(root) / check_team_name(team)


def run_name(team: str, task: Task, run: int) -> str:
    """The official base name ``TEAM_taskK_runN`` (the archive adds ``.zip``, the Docker context is a folder)."""
    return f"{check_team_name(team)}_task{TASK_NUMBERS[task]}_run{run}"


def existing_runs(folder: Path, team: str, task: Task) -> list[int]:
    """Run numbers already written for ``team`` and ``task`` in ``folder`` (archives or Docker contexts)."""
    pattern = re.compile(rf"^{re.escape(team)}_task{TASK_NUMBERS[task]}_run(\d+)(\.zip)?$")
    if not Path(folder).is_dir():
        return []
    return sorted(int(m.group(1)) for p in Path(folder).iterdir() if (m := pattern.match(p.name)))


def choose_run(
    folder: Path, team: str, task: Task, run: int | None = None, max_runs: int = MAX_RUNS, force: bool = False
) -> int:
    """The run number to write: ``run`` if allowed, else the lowest free number in 1..``max_runs``.

    Raises:
        RunNumberError: ``run`` is outside 1..max_runs, already exists without ``force``, or no number is free.
    """
    taken = existing_runs(folder, team, task)
    if run is None:
        free = [n for n in range(1, max_runs + 1) if n not in taken]
        if not free:
            raise RunNumberError(
                f"team {team!r} already has {len(taken)} task {TASK_NUMBERS[task]} runs in {folder} "
                f"(at most {max_runs}); replace one with --run N --force, or raise --max-runs"
            )
        return free[0]
    if not 1 <= run <= max_runs:
        raise RunNumberError(f"--run {run}: expected a run number from 1 to {max_runs} (--max-runs {max_runs})")
    if run in taken and not force:
        raise RunNumberError(
            f"--run {run}: {folder / run_name(team, task, run)} already exists; pass --force to overwrite it"
        )
    return run
