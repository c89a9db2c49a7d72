"""Run folders: ``runs/<n>-<model>/`` numbered in order, found by number, full id or ``latest``.

:class:`RunFolder` owns the layout of a run's record: the resolved config, environment, dataset record,
``checkpoints/best.pt`` and ``checkpoints/last.pt``, the per-epoch history, per-image metrics, ``summary.json``
and the ``evaluations/`` that ``medico evaluate`` adds later. Every file a run holds is named here and nowhere else.

A run without ``checkpoints/best.pt`` failed or was stopped before its first epoch ended: ``latest`` skips it
(saying so), since there is nothing to evaluate, submit or resume in it. A run stopped later holds the best and
last checkpoints of the epochs it finished: it is resumable, and ``latest`` may pick it.
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from medico.errors import MedicoError, MedicoWarning, some

__all__ = [
    "METRICS",
    "PER_IMAGE",
    "RunFolder",
    "RunNotFoundError",
    "create_numbered_folder",
    "evaluation_folder",
    "find_run",
    "latest_run",
    "list_runs",
    "read_per_image",
    "resolve_checkpoint",
    "run_number",
    "runs_root",
]

_NUMBERED = re.compile(r"^(\d+)-(.+)$")
"""``<n>-<label>``: run folders, sweep folders and evaluation folders."""
PER_IMAGE = "per_image.csv"
"""Per-image scores of an evaluation (a run's own, or one under ``evaluations/``)."""
METRICS = "metrics.json"
"""The summary and metric policy of an evaluation, beside its ``per_image.csv``."""
_CHECKPOINTS = "checkpoints"


class RunNotFoundError(MedicoError):
    """No run folder matches what the user typed, or the run lacks the file asked for."""


def runs_root() -> Path:
    """Where run folders live: ``$MEDICO_RUNS`` or ``./runs`` in the workspace."""
    return Path(os.environ.get("MEDICO_RUNS") or "runs")


def run_number(path: Path) -> int | None:
    """The number of a numbered folder (``3`` for ``runs/3-attunet``); None when its name has none."""
    match = _NUMBERED.match(Path(path).name)
    return int(match.group(1)) if match else None


def create_numbered_folder(root: Path, label: str) -> Path:
    """Create ``root/<n>-<label>`` with the next free number (safe against concurrent runs: mkdir is atomic)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("._") or "model"
    numbers = [n for p in root.iterdir() if p.is_dir() and (n := run_number(p)) is not None]
    number = max(numbers, default=0) + 1
    while True:
        path = root / f"{number}-{safe}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            number += 1


@dataclass(frozen=True)
class RunFolder:
    """One run's folder and the place of every file in it."""

    path: Path

    @classmethod
    def create(cls, model: str, root: Path | None = None) -> RunFolder:
        """A new, empty run folder for ``model``, numbered after the others and labelled by its name, or by the last
        part of its spec (``3-plugins.py_build`` for ``/abs/path/plugins.py:build``)."""
        return cls(create_numbered_folder(runs_root() if root is None else Path(root), model.rpartition("/")[2]))

    @classmethod
    def containing(cls, checkpoint: Path) -> RunFolder | None:
        """The run whose ``checkpoints/`` holds ``checkpoint``; None for a file kept anywhere else."""
        folder = Path(checkpoint).resolve().parent
        return cls(folder.parent).checked() if folder.name == _CHECKPOINTS else None

    def checked(self) -> RunFolder:
        """This run, refused when one of the folders medico writes into is a symbolic link: medico never makes one,
        and an evaluation, overlay, checkpoint or tracker log written through it would land outside the run (a
        copied run folder is anyone's files)."""
        for folder in (self.checkpoints, self.evaluations, self.overlays, self.tensorboard):
            if folder.is_symlink():
                raise RunNotFoundError(
                    f"{folder} is a symbolic link (to {os.readlink(folder)}): a run's own folders are never links, "
                    "and medico would write through it; replace it with a folder"
                )
        return self

    @property
    def name(self) -> str:
        """The run's id, e.g. ``3-attunet``."""
        return self.path.name

    @property
    def number(self) -> int | None:
        """The run's number (``3`` for ``3-attunet``)."""
        return run_number(self.path)

    @property
    def checkpoints(self) -> Path:
        return self.path / _CHECKPOINTS

    @property
    def best(self) -> Path:
        """The weights of the epoch with the best validation mIoU."""
        return self.checkpoints / "best.pt"

    @property
    def last(self) -> Path:
        """The last completed epoch, with everything needed to resume."""
        return self.checkpoints / "last.pt"

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def environment(self) -> Path:
        return self.path / "environment.json"

    @property
    def dataset(self) -> Path:
        """The dataset record: fingerprint, split name and digest, training and validation names."""
        return self.path / "dataset.json"

    @property
    def history(self) -> Path:
        return self.path / "history.csv"

    @property
    def training_curve(self) -> Path:
        return self.path / "training_curve.png"

    @property
    def per_image(self) -> Path:
        """The best checkpoint's per-image validation scores, written when the run finishes."""
        return self.path / PER_IMAGE

    @property
    def metrics(self) -> Path:
        return self.path / METRICS

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def evaluations(self) -> Path:
        """Where ``medico evaluate`` writes, one numbered folder per evaluation, never over the run's own record."""
        return self.path / "evaluations"

    @property
    def overlays(self) -> Path:
        return self.path / "overlays"

    @property
    def tensorboard(self) -> Path:
        """TensorBoard's event files of ``--tracker tensorboard`` (``tensorboard --logdir runs`` finds every run's)."""
        return self.path / "tensorboard"

    def checkpoint(self, which: str = "best") -> Path:
        """``best.pt`` or ``last.pt``, with an error naming the run when it is missing."""
        path = {"best": self.best, "last": self.last}[which]
        if not path.is_file():
            raise RunNotFoundError(
                f"run {self.name} has no {which} checkpoint ({path} is missing: the run failed or was stopped "
                "before its first epoch ended)"
            )
        return path


def list_runs(root: Path | None = None) -> list[RunFolder]:
    """Run folders under ``root``, oldest (lowest number) first."""
    root = runs_root() if root is None else Path(root)
    if not root.is_dir():
        return []
    numbered = [(n, p) for p in root.iterdir() if p.is_dir() and (n := run_number(p)) is not None]
    return [RunFolder(p) for _, p in sorted(numbered)]


def latest_run(root: Path | None = None) -> RunFolder:
    """The newest run holding a best checkpoint; newer runs without one (failed or stopped before their first
    epoch ended) are skipped with a :class:`~medico.errors.MedicoWarning` naming them."""
    root = runs_root() if root is None else Path(root)
    runs = list_runs(root)
    if not runs:
        raise RunNotFoundError(f"no runs yet in {root}; start one with `medico run MODEL`")
    usable = [run for run in runs if run.best.is_file()]
    if not usable:
        raise RunNotFoundError(
            f"no run in {root} has a best checkpoint: {some([r.name for r in runs])} failed or were stopped "
            "before their first epoch ended; start one with `medico run MODEL`"
        )
    chosen = usable[-1]
    skipped = [run.name for run in runs[runs.index(chosen) + 1 :]]
    if skipped:
        warnings.warn(
            MedicoWarning(
                f"latest is run {chosen.name}: skipped {some(skipped)} (no {chosen.best.relative_to(chosen.path)}: "
                "failed or stopped before the first epoch ended)"
            ),
            stacklevel=2,
        )
    return chosen


def find_run(run: str, root: Path | None = None) -> RunFolder:
    """The run folder for ``run``: its number (``3``), its full id (``3-attunet``), a path, or ``latest``."""
    root = runs_root() if root is None else Path(root)
    if run == "latest":
        return latest_run(root).checked()
    runs = list_runs(root)
    named = _named(run, runs)
    if named is not None:
        return named.checked()
    if Path(run).is_dir():
        return RunFolder(Path(run)).checked()
    known = ", ".join(r.name for r in runs[-10:]) or "none"
    raise RunNotFoundError(f"run {run!r} not found in {root} (latest runs: {known})")


def _named(run: str, runs: list[RunFolder]) -> RunFolder | None:
    """The run among ``runs`` that ``run`` names by number (``3``) or id (``3-attunet``), if any."""
    return next((r for r in runs if run == r.name or (run.isdigit() and int(run) == r.number)), None)


def resolve_checkpoint(run_or_file: str | None, which: str = "best", root: Path | None = None) -> Path:
    """A checkpoint file from a path to a ``.pt`` file, a run (number, id, folder, ``latest``) or None (latest).

    A text naming both a file and a run (a file ``3`` in the current folder, and run 3) is refused rather than
    guessed: scoring or submitting another model than the one meant would pass unnoticed.
    """
    if run_or_file is not None and Path(run_or_file).is_file():
        runs = list_runs(root)
        run = runs[-1] if run_or_file == "latest" and runs else _named(run_or_file, runs)
        if run is not None:
            raise RunNotFoundError(
                f"{run_or_file!r} names both the file {Path(run_or_file).resolve()} and run {run.name}: write "
                f"./{run_or_file} for the file, or {run.path} for the run"
            )
        return Path(run_or_file)
    return find_run(run_or_file or "latest", root).checkpoint(which)


def read_per_image(run: str, metrics: Sequence[str], root: Path | None = None) -> tuple[RunFolder, pd.DataFrame]:
    """A run's folder and its per-image validation scores (``per_image.csv``: one row per image, by name).

    The file is a run's record, and anyone can edit it: it is refused, naming it, unless it has rows, a unique name
    on each, and each of ``metrics`` as a column of numbers from 0 to 1.
    """
    folder = find_run(run, root)
    path = folder.per_image
    if not path.is_file():
        raise RunNotFoundError(
            f"run {folder.name}: {path} is missing (the run was never scored); finish it with `medico run MODEL "
            f"--resume {folder.name}` or score it with `medico evaluate {folder.name} --out {folder.path}`"
        )
    try:
        frame = pd.read_csv(path, dtype={"name": str})
    except (OSError, ValueError) as error:  # pandas' parser errors are ValueErrors, and so are decoding errors
        raise RunNotFoundError(f"{path}: cannot read per-image scores ({type(error).__name__}: {error})") from error
    if "name" not in frame.columns or frame.empty or frame["name"].isna().any() or frame["name"].duplicated().any():
        raise RunNotFoundError(
            f"{path}: expected one row per image with a name column, got {len(frame)} rows of {list(frame.columns)}"
        )
    for metric in metrics:
        values = pd.to_numeric(frame[metric], errors="coerce") if metric in frame.columns else None
        if values is None or not values.between(0, 1).all():  # NaN, text and infinities are never between
            found = "no such column" if values is None else f"{(~values.between(0, 1)).sum()} values that are not"
            raise RunNotFoundError(f"{path}: expected column {metric} to hold numbers from 0 to 1, found {found}")
        frame[metric] = values
    return folder, frame


@contextlib.contextmanager
def evaluation_folder(checkpoint: Path, out: Path | None = None, *, force: bool = False) -> Iterator[Path]:
    """The folder an evaluation of ``checkpoint`` writes its ``per_image.csv`` and ``metrics.json`` into.

    By default a new numbered folder of its own: ``RUN/evaluations/<n>-<stem>/`` for a checkpoint of a run,
    ``./evaluations/<n>-<stem>/`` for any other file, so an evaluation never replaces a run's record. ``out`` is
    used as given, unless it already holds results and ``force`` is not set (refused at once, before scoring).
    Folders made here are removed again when the block fails before anything was written into them.
    """
    if out is None:
        run = RunFolder.containing(checkpoint)
        root = run.evaluations if run is not None else Path("evaluations")
        made = [root] if not root.exists() else []
        folder = create_numbered_folder(root, Path(checkpoint).stem)
        made.insert(0, folder)
    else:
        folder = Path(out)
        made = [] if folder.exists() else [folder]
        if not made and not folder.is_dir():
            raise MedicoError(f"--out {folder}: expected a folder for {PER_IMAGE} and {METRICS}, found a file")
        present = [name for name in (PER_IMAGE, METRICS) if (folder / name).exists()]
        if present and not force:
            raise MedicoError(
                f"--out {folder}: already holds {' and '.join(present)} (perhaps a run's own record); leave out "
                "--out to write to a new folder, or pass --force to replace them"
            )
        folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    except BaseException:
        for made_here in made:  # the folder, then the evaluations/ folder holding it when made for it
            if made_here.is_dir() and not any(made_here.iterdir()):
                made_here.rmdir()
        raise
