"""Submission names and run numbers: a team's folder, ``TEAM_taskK_runN`` and the challenge's run allowance.

What a team name may hold and which run numbers exist are decided once, in :mod:`medico.leaderboard.participant`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from medico.leaderboard.participant import (
    MAX_TEAM_NAME,
    RunNumberError,
    TeamNameError,
    check_run_number,
    check_team_name,
)

__all__ = [
    "MAX_RUNS",
    "MAX_TEAM_NAME",
    "SUBMISSIONS",
    "TASK_NUMBERS",
    "RunNumberError",
    "Task",
    "TeamNameError",
    "check_team_name",
    "choose_run",
    "existing_runs",
    "run_in_name",
    "run_name",
    "team_dir",
]

Task = Literal["segmentation", "efficiency"]
TASK_NUMBERS: dict[str, int] = {"segmentation": 1, "efficiency": 2}
MAX_RUNS = 5
"""The challenge rule: at most five runs per team and task."""
SUBMISSIONS = Path("submissions")
"""Where ``medico submit`` writes unless told otherwise: ``submissions/TEAM/TEAM_taskK_runN...``."""


def team_dir(root: Path, team: str) -> Path:
    """The team's folder ``root/TEAM`` (the name checked first)."""
    return Path(root) / check_team_name(team)


def run_name(team: str, task: Task, run: int) -> str:
    """The official base name ``TEAM_taskK_runN`` (the archive adds ``.zip``, the Docker context is a folder) of a
    team whose name :func:`team_dir` has checked."""
    return f"{team}_task{TASK_NUMBERS[task]}_run{run}"


def run_in_name(name: str, task: Task, team: str | None = None) -> int | None:
    """The ``N`` of a name ``TEAM_taskK_runN`` (or ``TEAM_taskK_runN.zip``) of ``task``, and of ``team`` when given;
    None for any other name."""
    who = ".+" if team is None else re.escape(team)
    match = re.fullmatch(rf"{who}_task{TASK_NUMBERS[task]}_run(\d+)(?:\.zip)?", name)
    return int(match.group(1)) if match else None


def existing_runs(folder: Path, team: str, task: Task) -> list[int]:
    """Run numbers already written for ``team`` and ``task`` in ``folder`` (archives or Docker contexts)."""
    if not Path(folder).is_dir():
        return []
    return sorted(n for p in Path(folder).iterdir() if (n := run_in_name(p.name, task, team)) is not None)


def choose_run(
    folder: Path, team: str, task: Task, run: int | None = None, max_runs: int = MAX_RUNS, force: bool = False
) -> int:
    """The run number to write: ``run`` if allowed, else the lowest free number in 1..``max_runs``.

    Raises:
        RunNumberError: ``max_runs`` is not a run number, ``run`` is outside 1..max_runs, already exists without
            ``force``, or no number is free.
    """
    check_run_number(max_runs, "--max-runs")
    taken = existing_runs(folder, team, task)
    if run is None:
        free = next((n for n in range(1, max_runs + 1) if n not in taken), None)
        if free is None:
            raise RunNumberError(
                f"team {team!r} already has {len(taken)} task {TASK_NUMBERS[task]} runs in {folder} "
                f"(at most {max_runs}); replace one with --run N --force, or raise --max-runs"
            )
        return free
    try:
        check_run_number(run, "--run", max_runs)
    except RunNumberError as error:  # a common mix-up: the submission's slot taken for the training run
        raise RunNumberError(
            f"{error} (--run is the submission's slot, TEAM_task{TASK_NUMBERS[task]}_runN, at most {max_runs} per "
            "team; the training run to submit is chosen with --checkpoint RUN)"
        ) from None
    if run in taken and not force:
        raise RunNumberError(
            f"--run {run}: {folder / run_name(team, task, run)} already exists; pass --force to overwrite it"
        )
    return run
