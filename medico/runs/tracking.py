"""Experiment trackers: a run's config, epochs, final scores and overlays, sent to TensorBoard or MLflow as well.

``--tracker tensorboard`` writes event files into the run's ``tensorboard/`` folder (``tensorboard --logdir runs``
shows every run); ``--tracker mlflow`` logs one MLflow run, named after the medico run, to ``$MLFLOW_TRACKING_URI``
or else the local file store ``./mlruns``. Each needs its optional extra (``medico[tensorboard]``,
``medico[mlflow]``), checked with the option, before training (:func:`check_tracker`).

The run's own record (``history.csv``, ``summary.json``) stays the reference: a tracker that fails (a full disk, a
server gone) is a :class:`~medico.errors.MedicoWarning`, once, and the run goes on without it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PIL import Image

from medico.errors import MedicoError, MedicoWarning, describe_error

if TYPE_CHECKING:  # the config checks a tracker's name with this module, which must not import it (nor torch) back
    from medico.engine.training import EpochRecord
    from medico.runs.config import RunConfig
    from medico.runs.folder import RunFolder

__all__ = [
    "EXPERIMENT",
    "TRACKERS",
    "NoTracker",
    "Tracker",
    "TrackerError",
    "check_tracker",
    "epoch_scalars",
    "flat_config",
    "open_tracker",
    "tracking",
]

_PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow"}
"""Each tracker and the package it needs, installed by the extra of the tracker's name (``medico[mlflow]``)."""

TRACKERS = ("none", *_PACKAGES)

EXPERIMENT = "medico"
"""The MLflow experiment runs are logged to, unless ``$MLFLOW_EXPERIMENT_NAME`` names another."""

Overlays = Callable[[], Sequence[Path]]
"""Writes the overlay PNGs of the best and worst validation images, the contact sheet last, and returns them; called
only by a tracker that logs them."""


class TrackerError(MedicoError):
    """An unknown tracker, or one whose package is not installed."""


class Tracker(Protocol):
    """Where a run reports besides its own record; every method is called on rank 0 only."""

    def log_epoch(self, record: EpochRecord) -> None:
        """An epoch ended: its training loss, validation Dice and IoU, lr, seconds and images per second."""

    def log_final(self, scores: Mapping[str, Any], overlays: Overlays) -> None:
        """The best checkpoint's validation scores, and the overlays of its best and worst images."""

    def close(self, completed: bool) -> None:
        """The run ended: ``completed``, or stopped by an error or Ctrl-C."""


class NoTracker:
    """Tracks nothing: the default, and what every process but rank 0 gets."""

    def log_epoch(self, record: EpochRecord) -> None:
        pass

    def log_final(self, scores: Mapping[str, Any], overlays: Overlays) -> None:
        pass

    def close(self, completed: bool) -> None:
        pass


def check_tracker(name: str, option: str = "--tracker") -> str:
    """``name`` when it is a known tracker whose package is installed; a one-line error naming the extra otherwise."""
    if name not in TRACKERS:
        raise TrackerError(f"{option} must be one of {', '.join(TRACKERS)}, got {name!r}")
    package = _PACKAGES.get(name)
    if package is not None and importlib.util.find_spec(package) is None:
        raise TrackerError(
            f"{option} {name} needs the {package} package, which is not installed: pip install 'medico[{name}]'"
        )
    return name


def epoch_scalars(record: EpochRecord) -> dict[str, float]:
    """An epoch's numbers as trackers log them, named as ``history.csv``'s columns."""
    return {k: float(v) for k, v in dataclasses.asdict(record).items() if k not in ("epoch", "best")}


def flat_config(config: RunConfig) -> dict[str, str | int | float | bool]:
    """The config as flat hyperparameters: builder options as ``options.KEY``; None and lists as text."""
    values = config.as_dict()
    del values["sources"]
    options = values.pop("options")
    values.update({f"options.{k}": v for k, v in options.items()})
    return {k: v if isinstance(v, str | int | float | bool) else json.dumps(v) for k, v in values.items()}


def _final_scalars(scores: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers among the final validation scores (Dice, IoU, their std...), prefixed ``final_``."""
    return {
        f"final_{k}": float(v)
        for k, v in scores.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


class TensorBoardTracker:
    """Event files under ``RUN/tensorboard/``: scalars per epoch, the config as hparams and as text, the final
    scores, and the overlays' contact sheet as an image."""

    def __init__(self, run: RunFolder, config: RunConfig) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        self.writer = SummaryWriter(log_dir=str(run.tensorboard))
        self.step = 0
        experiment, start, self.end = hparams(flat_config(config), {"final_dice": 0.0, "final_iou": 0.0})
        self.writer.file_writer.add_summary(experiment)
        self.writer.file_writer.add_summary(start)
        text = json.dumps(config.as_dict(), indent=2)
        self.writer.add_text("config", "\n".join(f"    {line}" for line in text.splitlines()))  # markdown code
        self.writer.flush()

    def log_epoch(self, record: EpochRecord) -> None:
        for name, value in epoch_scalars(record).items():
            self.writer.add_scalar(name, value, record.epoch)
        self.step = record.epoch
        self.writer.flush()  # each epoch readable at once, and a full disk noticed now rather than at the end

    def log_final(self, scores: Mapping[str, Any], overlays: Overlays) -> None:
        for name, value in _final_scalars(scores).items():
            self.writer.add_scalar(name, value, self.step)
        *_, sheet = overlays()
        self.writer.add_image("overlays", np.asarray(Image.open(sheet).convert("RGB")), self.step, dataformats="HWC")
        self.writer.flush()

    def close(self, completed: bool) -> None:
        if completed:
            self.writer.file_writer.add_summary(self.end)
        self.writer.close()


class MLflowTracker:
    """One MLflow run named after the medico run (a resumed run continues it): the config as params, metrics per epoch
    and final, the overlay PNGs as artifacts under ``overlays/``."""

    def __init__(self, run: RunFolder, config: RunConfig) -> None:
        # MLflow 3 keeps its file store, the default here, behind this switch; a user's own setting is left as is.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI") or Path("mlruns").resolve().as_uri()
        self.client = MlflowClient(tracking_uri=uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
        found = self.client.get_experiment_by_name(name)
        experiment = found.experiment_id if found is not None else self.client.create_experiment(name)
        tag = str(run.path.resolve())
        # A resumed run continues its MLflow run: found by name (run folder names hold no quotes), then by folder.
        named = self.client.search_runs([experiment], filter_string=f"attributes.run_name = '{run.name}'")
        earlier = [r for r in named if r.data.tags.get("medico.run") == tag]
        if earlier:
            self.run_id = earlier[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            self.run_id = self.client.create_run(experiment, run_name=run.name, tags={"medico.run": tag}).info.run_id
            params = [Param(k, str(v)) for k, v in flat_config(config).items()]
            self.client.log_batch(self.run_id, params=params)
        self.step = 0

    def _metrics(self, values: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])

    def log_epoch(self, record: EpochRecord) -> None:
        self._metrics(epoch_scalars(record), record.epoch)
        self.step = record.epoch

    def log_final(self, scores: Mapping[str, Any], overlays: Overlays) -> None:
        self._metrics(_final_scalars(scores), self.step)
        for path in overlays():
            self.client.log_artifact(self.run_id, str(path), "overlays")

    def close(self, completed: bool) -> None:
        self.client.set_terminated(self.run_id, "FINISHED" if completed else "KILLED")


_OPENERS: dict[str, Callable[[RunFolder, RunConfig], Tracker]] = {
    "tensorboard": TensorBoardTracker,
    "mlflow": MLflowTracker,
}


class _Guarded:
    """A tracker whose first failure is a warning, after which it tracks nothing: the run matters more than its logs."""

    def __init__(self, name: str, inner: Tracker) -> None:
        self.name, self.inner = name, inner

    def _call(self, method: str, *args: Any) -> None:
        if self.inner is None:
            return
        try:
            getattr(self.inner, method)(*args)
        except Exception as error:  # whatever the tracker's library raises: the run goes on
            self.inner = None
            _warn(self.name, error)

    def log_epoch(self, record: EpochRecord) -> None:
        self._call("log_epoch", record)

    def log_final(self, scores: Mapping[str, Any], overlays: Overlays) -> None:
        self._call("log_final", scores, overlays)

    def close(self, completed: bool) -> None:
        self._call("close", completed)


def _warn(name: str, error: Exception) -> None:
    warnings.warn(
        MedicoWarning(f"--tracker {name} failed ({describe_error(error)}); the run goes on without it"), stacklevel=3
    )


def open_tracker(name: str, run: RunFolder, config: RunConfig) -> Tracker:
    """The tracker called ``name`` (``none``: :class:`NoTracker`) for ``run``, its config logged; one that cannot
    start or later fails is a warning, not an error."""
    if check_tracker(name) == "none":
        return NoTracker()
    try:
        tracker = _OPENERS[name](run, config)
    except Exception as error:
        _warn(name, error)
        return NoTracker()
    return _Guarded(name, tracker)


@contextlib.contextmanager
def tracking(name: str, run: RunFolder, config: RunConfig) -> Iterator[Tracker]:
    """:func:`open_tracker`, closed on leaving: completed, or not when an exception (Ctrl-C included) leaves."""
    tracker = open_tracker(name, run, config)
    completed = False
    try:
        yield tracker
        completed = True
    finally:
        tracker.close(completed)
