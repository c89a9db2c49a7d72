"""Run folders: ``runs/<n>-<model>/`` numbered in order, found by number, full id or ``latest``.

A run folder holds the resolved config, environment, dataset fingerprint, ``checkpoints/best.pt`` and
``checkpoints/last.pt``, the per-epoch history, per-image metrics and ``summary.json``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from medico.errors import MedicoError

__all__ = [
    "RunNotFoundError",
    "create_run_dir",
    "find_run",
    "list_runs",
    "read_per_image",
    "resolve_checkpoint",
    "runs_root",
]

_RUN_NAME = re.compile(r"^(\d+)-(.+)$")


class RunNotFoundError(MedicoError):
    """No run folder matches what the user typed."""


def runs_root() -> Path:
    """Where run folders live: ``$MEDICO_RUNS`` or ``./runs`` in the workspace."""
    return Path(os.environ.get("MEDICO_RUNS") or "runs")


def list_runs(root: Path | None = None) -> list[Path]:
    """Run folders under ``root``, oldest (lowest number) first."""
    root = runs_root() if root is None else Path(root)
    if not root.is_dir():
        return []
    numbered = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _RUN_NAME.match(p.name))]
    return [p for _, p in sorted(numbered)]


def create_run_dir(model: str, root: Path | None = None) -> Path:
    """Create the next numbered run folder for ``model`` (safe against concurrent runs: mkdir is atomic)."""
    root = runs_root() if root is None else Path(root)
    root.mkdir(parents=True, exist_ok=True)
    safe_model = re.sub(r"[^A-Za-z0-9_.-]+", "_", model).strip("._") or "model"
    runs = list_runs(root)
    number = int(_RUN_NAME.match(runs[-1].name).group(1)) + 1 if runs else 1
    while True:
        path = root / f"{number}-{safe_model}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            number += 1


def find_run(run: str, root: Path | None = None) -> Path:
    """The run folder for ``run``: its number (``3``), its full id (``3-attunet``), a path, or ``latest``."""
    root = runs_root() if root is None else Path(root)
    runs = list_runs(root)
    if run == "latest":
        if not runs:
            raise RunNotFoundError(f"no runs yet in {root}; start one with `medico run MODEL`")
        return runs[-1]
    for path in runs:
        if run in (path.name, _RUN_NAME.match(path.name).group(1)):
            return path
    if Path(run).is_dir():
        return Path(run)
    known = ", ".join(p.name for p in runs[-10:]) or "none"
    raise RunNotFoundError(f"run {run!r} not found in {root} (latest runs: {known})")


def resolve_checkpoint(run_or_file: str | None, which: str = "best", root: Path | None = None) -> Path:
    """A checkpoint file from a path to a ``.pt`` file, a run (number, id, folder, ``latest``) or None (latest)."""
    if run_or_file is not None and Path(run_or_file).is_file():
        return Path(run_or_file)
    run_dir = find_run(run_or_file or "latest", root)
    checkpoint = run_dir / "checkpoints" / f"{which}.pt"
    if not checkpoint.is_file():
        raise RunNotFoundError(f"run {run_dir.name} has no {which} checkpoint ({checkpoint} is missing)")
    return checkpoint


def read_per_image(run: str, root: Path | None = None) -> tuple[Path, pd.DataFrame]:
    """A run's folder and its per-image validation scores (``per_image.csv``: one row per image, by name)."""
    folder = find_run(run, root)
    path = folder / "per_image.csv"
    if not path.is_file():
        raise RunNotFoundError(
            f"run {folder.name}: {path} is missing (the run was never scored); finish it with "
            f"`medico run MODEL --resume {folder.name}` or score it with `medico evaluate {folder.name} --out {folder}`"
        )
    frame = pd.read_csv(path, dtype={"name": str})
    if "name" not in frame.columns or frame["name"].duplicated().any():
        raise RunNotFoundError(f"{path}: expected one row per image with a name column, got {list(frame.columns)}")
    return folder, frame
