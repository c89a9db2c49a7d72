"""The checkpoints a prediction averages: one run or file (a single model), several, or every run of a sweep.

``predict``, ``evaluate`` and ``submit`` take checkpoints and runs as :func:`medico.runs.folder.resolve_checkpoint`
reads each, plus ``--sweep ID``: the runs a sweep folder ``runs/sweeps/<n>-<model>/`` lists in its ``summary.json``
(all its folds and seeds). Several checkpoints make an ensemble (:class:`medico.engine.ensemble.Ensemble`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from medico.errors import MedicoError, some
from medico.runs.folder import find_run, list_runs, resolve_checkpoint, run_number, runs_root

__all__ = ["MembersError", "find_sweep", "resolve_members", "sweep_runs", "sweeps_root"]

_MAX_SUMMARY_BYTES = 10_000_000
"""A sweep's summary lists a few hundred runs at most; a larger file is not one medico wrote."""


class MembersError(MedicoError):
    """A sweep that cannot be found or read, or a checkpoint given twice."""


def sweeps_root(root: Path | None = None) -> Path:
    """Where sweep folders live: ``sweeps/`` in the runs folder (:func:`medico.runs.folder.runs_root`)."""
    return (runs_root() if root is None else Path(root)) / "sweeps"


def find_sweep(sweep: str, root: Path | None = None) -> Path:
    """The sweep folder that ``sweep`` names: its number (``2``), its id (``2-attunet``) or ``latest``."""
    folder = sweeps_root(root)
    sweeps = list_runs(folder)  # numbered folders, oldest first: the same layout as runs
    chosen = sweeps[-1:] if sweep == "latest" else [s for s in sweeps if sweep in (s.name, str(s.number))]
    if not chosen:
        known = ", ".join(s.name for s in sweeps[-10:]) or "none"
        raise MembersError(f"sweep {sweep!r}: no such sweep in {folder} (latest sweeps: {known})")
    return chosen[0].path


def sweep_runs(sweep: str, root: Path | None = None) -> list[str]:
    """The ids of the runs of sweep ``sweep`` (its folds and seeds), as its ``summary.json`` lists them.

    The summary is a file anyone can edit: only run ids (``3-attunet``, never a path), each once, are taken from it,
    each then found among the runs like any run a user names.
    """
    summary = find_sweep(sweep, root) / "summary.json"
    try:
        if summary.is_symlink() or not summary.is_file() or summary.stat().st_size > _MAX_SUMMARY_BYTES:
            raise ValueError("not a plain file, or too large")  # a FIFO would block the read forever
        runs = json.loads(summary.read_text(encoding="utf-8"))["runs"]
        ids = [row["run"] for row in runs]
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as error:
        problem = f"{type(error).__name__}: {error}"
        raise MembersError(f"sweep {sweep}: cannot read the runs of {summary} ({problem})") from error
    plain = [run for run in ids if isinstance(run, str) and Path(run).name == run and run_number(run) is not None]
    if not ids or len(plain) != len(ids):
        found = str(ids)[:200]
        raise MembersError(f"sweep {sweep}: {summary} must list its runs by id (like 3-attunet), found {found}")
    twice = sorted({run for run in plain if plain.count(run) > 1})
    if twice:  # medico lists each run once; a run listed twice would weigh double in an ensemble or a sweep's mean
        raise MembersError(f"sweep {sweep}: {summary} lists run {some(twice)} more than once (each run once)")
    return plain


def resolve_members(given: Sequence[str], sweep: str | None = None, root: Path | None = None) -> list[Path]:
    """The checkpoint files of the models to average: each of ``given`` (a file or a run), then the best checkpoint
    of each run of ``sweep``; the latest run's when neither is given.

    Raises:
        MembersError: a checkpoint given twice (it would weigh double), or a sweep that cannot be read.
        RunNotFoundError: a run that does not exist or has no best checkpoint.
    """
    paths = [resolve_checkpoint(value, root=root) for value in given]
    if sweep is not None:
        paths += [find_run(run, root).checkpoint("best") for run in sweep_runs(sweep, root)]
    if not paths:
        paths = [resolve_checkpoint(None, root=root)]
    resolved = [path.resolve() for path in paths]
    twice = sorted({str(path) for path in paths if resolved.count(path.resolve()) > 1})
    if twice:
        raise MembersError(f"checkpoints: each model once, but {some(twice)} is given more than once")
    return paths
