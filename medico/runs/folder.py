"""Run folders: ``runs/<n>-<label>/`` numbered in order, found by number, full id, label or ``latest``.

A run's label is its ``--name`` or else its model (``runs/9-alpha-quick/``, ``runs/3-unet/``). A label names the
newest run carrying it, with a note when several do; a name is refused where it would read as a number, an id or
``latest`` (:func:`check_run_name`), so that those always mean what they meant.

:class:`RunFolder` owns the layout of a run's record: the resolved config, environment, dataset record,
``checkpoints/best.pt`` and ``checkpoints/last.pt``, the per-epoch history, per-image metrics, ``summary.json``
and the ``evaluations/`` that ``medico evaluate`` adds later. Every file a run holds is named here and nowhere else.

A run without ``checkpoints/best.pt`` failed or was stopped before its first epoch ended: ``latest`` and a label
skip it (saying so), since there is nothing to evaluate, submit or resume in it. A run stopped later holds the best and
last checkpoints of the epochs it finished: it is resumable, and ``latest`` may pick it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from medico.errors import MedicoError, MedicoWarning, some
from medico.leaderboard.participant import check_team_name
from medico.plugins import is_model

__all__ = [
    "METRICS",
    "PER_IMAGE",
    "RunFolder",
    "RunNameError",
    "RunNotFoundError",
    "check_run_name",
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
_UNKEPT = re.compile(r"[^A-Za-z0-9_.-]+")
"""What a folder's label does not keep of the text it is made from."""
_LATEST = "latest"
"""Names the newest run holding a best checkpoint."""
PER_IMAGE = "per_image.csv"
"""Per-image scores of an evaluation (a run's own, or one under ``evaluations/``)."""
METRICS = "metrics.json"
"""The summary and metric policy of an evaluation, beside its ``per_image.csv``."""
_CHECKPOINTS = "checkpoints"


class RunNotFoundError(MedicoError):
    """No run folder matches what the user typed, or the run lacks the file asked for."""


class RunNameError(MedicoError):
    """A ``--name`` that cannot label a run folder, or that would read as another run's number, id or ``latest``."""


def runs_root() -> Path:
    """Where run folders live: ``$MEDICO_RUNS`` or ``./runs`` in the workspace."""
    return Path(os.environ.get("MEDICO_RUNS") or "runs")


def run_number(path: Path) -> int | None:
    """The number of a numbered folder (``3`` for ``runs/3-attunet``); None when its name has none."""
    match = _NUMBERED.match(Path(path).name)
    return int(match.group(1)) if match else None


def _folder_label(text: str) -> str:
    """``text`` as a numbered folder's label: runs of characters other than letters, digits, '.', '-' and '_' become
    one '_', with no '.' or '_' at either end (``plugins.py_build`` for ``plugins.py:build``)."""
    return _UNKEPT.sub("_", text).strip("._") or "model"


def check_run_name(name: str, label: str = "--name") -> str:
    """``name`` unchanged when it can label a run folder as it is and name that run alone.

    That is a plain name (:func:`~medico.leaderboard.participant.check_team_name`: no path separator or control
    character, no leading dot...) of letters, digits, '.', '-' and '_' (kept as is in the folder's name), and not
    one that reads as a run number (``3``), a run id (``3-unet``), ``latest`` or a model's name (which labels that
    model's unnamed runs: ``--name unet`` on an attunet run would make ``--checkpoint unet`` pick it).

    Raises:
        TeamNameError, RunNameError: naming ``label``, what a name may be and what ``name`` holds.
    """
    check_team_name(name, label)
    problem = None
    unkept = sorted(set("".join(_UNKEPT.findall(name))))
    if unkept:
        problem = f"it contains {', '.join(repr(c) for c in unkept)}"
    elif _folder_label(name) != name:
        problem = "it starts or ends with '.' or '_'"
    elif name.isdigit():
        problem = f"it is a number, which names run {name}"
    elif name == _LATEST:
        problem = "latest names the newest run"
    elif _NUMBERED.match(name):
        problem = "it reads as a run id (NUMBER-LABEL), which names that run"
    elif is_model(name):
        problem = "it is a model's name, which labels that model's runs without a name"
    if problem:
        raise RunNameError(
            f"{label} {name!r}: expected a run name of letters, digits, '.', '-' and '_' that is not a number, "
            f"a run id, {_LATEST} or a model's name, but {problem}"
        )
    return name


def create_numbered_folder(root: Path, label: str) -> Path:
    """Create ``root/<n>-<label>`` with the next free number (safe against concurrent runs: mkdir is atomic);
    ``label`` as :func:`_folder_label` keeps it."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    safe = _folder_label(label)
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
    def create(cls, model: str, root: Path | None = None, *, name: str | None = None) -> RunFolder:
        """A new, empty run folder for ``model``, numbered after the others and labelled by ``name`` (a
        :func:`check_run_name` name) when given, else by the model's name or the last part of its spec
        (``3-plugins.py_build`` for ``/abs/path/plugins.py:build``)."""
        label = name if name is not None else model.rpartition("/")[2]
        return cls(create_numbered_folder(runs_root() if root is None else Path(root), label))

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
    def label(self) -> str | None:
        """The run's label: its ``--name``, or else its model (``attunet`` for ``3-attunet``)."""
        match = _NUMBERED.match(self.path.name)
        return match.group(2) if match else None

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
    return _newest(_LATEST, runs, root)


def _newest(what: str, runs: list[RunFolder], root: Path) -> RunFolder:
    """The newest of ``runs`` (all, or those labelled ``what``) holding a best checkpoint, with a
    :class:`~medico.errors.MedicoWarning` naming the other runs ``what`` might have meant and the newer ones skipped."""
    usable = [run for run in runs if run.best.is_file()]
    if not usable:
        among = "no run" if what == _LATEST else f"no run labelled {what}"
        raise RunNotFoundError(
            f"{among} in {root} has a best checkpoint: {some([r.name for r in runs])} failed or "
            f"{'was' if len(runs) == 1 else 'were'} stopped before the first epoch ended; start one with "
            "`medico run MODEL`"
        )
    chosen = usable[-1]
    notes = []
    older = [run.name for run in reversed(runs[: runs.index(chosen)])]
    if what != _LATEST and older:
        notes.append(f"{len(runs)} runs are labelled so (also {some(older)}; name another by its number)")
    skipped = [run.name for run in runs[runs.index(chosen) + 1 :]]
    if skipped:
        notes.append(
            f"skipped {some(skipped)} (no {chosen.best.relative_to(chosen.path)}: failed or stopped before the "
            "first epoch ended)"
        )
    if notes:
        warnings.warn(MedicoWarning(f"{what} is run {chosen.name}: {'; '.join(notes)}"), stacklevel=3)
    return chosen


def find_run(run: str, root: Path | None = None) -> RunFolder:
    """The run folder for ``run``: its number (``3``), its full id (``3-attunet``), its label (its ``--name`` or its
    model: the newest run carrying it), a path, or ``latest``."""
    root = runs_root() if root is None else Path(root)
    if run == _LATEST:
        return latest_run(root).checked()
    runs = list_runs(root)
    named = _named(run, runs)
    if named is not None:
        return named.checked()
    labelled = [r for r in runs if r.label == run]
    if labelled:
        chosen = _newest(run, labelled, root)
        _note_newer_named_runs(run, chosen, runs)
        return chosen.checked()
    if Path(run).is_dir():
        return RunFolder(Path(run)).checked()
    known = ", ".join(r.name for r in runs[-10:]) or "none"
    raise RunNotFoundError(f"run {run!r} not found in {root} (latest runs: {known})")


def _note_newer_named_runs(model: str, chosen: RunFolder, runs: list[RunFolder]) -> None:
    """Say which newer runs of ``model`` carry a name of their own, when a model's name picked ``chosen`` (its newest
    unnamed run): the run meant may be one of them."""
    if not is_model(model):
        return
    later = [r for r in runs if (r.number or 0) > (chosen.number or 0) and r.label != model]
    newer = [r.name for r in later if _model_of(r) == model]
    if newer:
        warnings.warn(
            MedicoWarning(f"{model} is run {chosen.name}, its newest run without a name; newer {model} runs carry "
                          f"names: {some(newer)} (name one of them to use it)"),
            stacklevel=3,
        )


def _model_of(run: RunFolder) -> str | None:
    """The model a run's ``config.json`` records; None where it is missing or unreadable."""
    try:
        model = json.loads(run.config.read_text(encoding="utf-8")).get("model")
    except (OSError, ValueError, AttributeError, RecursionError):
        return None
    return model if isinstance(model, str) else None


def _named(run: str, runs: list[RunFolder]) -> RunFolder | None:
    """The run among ``runs`` that ``run`` names by number (``3``) or id (``3-attunet``), if any."""
    return next((r for r in runs if run == r.name or (run.isdigit() and int(run) == r.number)), None)


def _meant(run: str, runs: list[RunFolder]) -> RunFolder | None:
    """The run ``run`` would name among ``runs`` (``latest``, a number, an id or a label), if any, before checking it
    holds a checkpoint."""
    if run == _LATEST:
        return runs[-1] if runs else None
    labelled = [r for r in runs if r.label == run]
    return _named(run, runs) or (labelled[-1] if labelled else None)


def resolve_checkpoint(run_or_file: str | None, which: str = "best", root: Path | None = None) -> Path:
    """A checkpoint file from a path to a ``.pt`` file, a run (number, id, label, folder, ``latest``) or None
    (latest).

    A text naming both a file and a run (a file ``3`` or ``unet`` in the current folder, and run 3 or a run labelled
    ``unet``) is refused rather than guessed: scoring or submitting another model than the one meant would pass
    unnoticed.
    """
    if run_or_file is not None and Path(run_or_file).is_file():
        run = _meant(run_or_file, list_runs(root))
        if run is not None:
            raise RunNotFoundError(
                f"{run_or_file!r} names both the file {Path(run_or_file).resolve()} and run {run.name}: write "
                f"./{run_or_file} for the file, or {run.path} for the run"
            )
        return Path(run_or_file)
    return find_run(run_or_file or _LATEST, root).checkpoint(which)


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
