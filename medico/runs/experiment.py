"""The steps of ``medico run`` and ``medico train``: plan the run, train it, then score, time, record and rank it.

``plan_run`` resolves the config and opens the dataset and split (both independent of ``--seed``, so runs
differing only in seed are scored on the same images), or, to resume, reloads the config and reopens the run's
recorded data with :func:`medico.runs.dataset.run_data`; ``make_trainer`` builds the trainer and, for a new run,
creates its folder, the one place a run folder is made; ``train_run`` writes the record's first files and trains,
keeping ``history.csv``, the curve and the tracker (``--tracker``, :mod:`medico.runs.tracking`) up to date after
every epoch; ``finish_run`` scores the best checkpoint at the original resolution, optionally measures model FPS
and adds a ``val`` entry to the leaderboard, and writes ``summary.json``; ``run_tracking`` holds the tracker over
both.

With several processes (:mod:`medico.engine.distributed`) every process runs these steps; rank 0 creates the run folder
(the others learn its name), writes every file and the leaderboard entry; scoring is shared out and gathered.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from medico.bench.speed import SpeedResult, measure_model_speed
from medico.data import open_dataset, resolve_split
from medico.download import file_sha256
from medico.engine.budget import format_duration
from medico.engine.contract import probe_model
from medico.engine.distributed import broadcast_object, evaluate_sharded, is_main
from medico.engine.evaluation import prediction_record
from medico.engine.inference import Predictor
from medico.engine.result import EvaluationResult
from medico.engine.runtime import MASK_PRECISION
from medico.engine.training import (
    EpochRecord,
    RunProgress,
    Trainer,
    TrainingObserver,
    TrainingResult,
    load_resume_checkpoint,
)
from medico.leaderboard import Entry, LeaderboardStore
from medico.leaderboard.team import default_team
from medico.overlay import best_and_worst, write_overlays
from medico.plugins import canonical_spec, get_plugin
from medico.runs.checkpoint import Checkpoint, load_model
from medico.runs.config import ConfigError, RunConfig, RunOptions, resolve_config
from medico.runs.dataset import DataRecord, run_data
from medico.runs.folder import RunFolder, find_run, run_number
from medico.runs.record import environment_info, write_history, write_json, write_training_curve
from medico.runs.tracking import NoTracker, Tracker, tracking

__all__ = [
    "RunOutcome",
    "RunPlan",
    "dataset_label",
    "finish_run",
    "make_trainer",
    "plan_run",
    "run_tracking",
    "train_run",
]

TRACKED_OVERLAYS = 4
"""How many best and how many worst validation images a tracker gets as overlays (and ``RUN/overlays`` holds)."""


@dataclass
class RunPlan:
    """A run ready to train: its config, data, split, the checkpoint it resumes from (if any) and its folder.

    A new run has no folder (``run`` None) until :func:`make_trainer` creates it, right before training.
    """

    config: RunConfig
    dataset: Any
    split: Any
    run: RunFolder | None = None
    resume_from: Checkpoint | None = None

    def record(self) -> DataRecord:
        """The record of the data and split this run trains on (``dataset.json``, and in every checkpoint)."""
        return DataRecord.of(self.dataset, self.split)


@dataclass(frozen=True)
class RunOutcome:
    """What ``finish_run`` produced: the best checkpoint's validation scores, FPS, leaderboard row id, summary."""

    evaluation: EvaluationResult
    speed: SpeedResult | None
    entry: Entry | None
    entry_id: int | None
    summary: dict[str, Any]


def plan_run(
    model: str,
    given: RunOptions,
    *,
    resume: str | None = None,
) -> RunPlan:
    """Resolve everything a run needs before it trains; nothing is trained and no folder is created yet.

    Args:
        model: plugin name or ``file.py:builder`` spec.
        given: the options the command was given.
        resume: a run (number, id, label, folder, ``latest``) whose ``last.pt`` to continue from.
    """
    if resume is not None:
        run = find_run(resume)
        model = canonical_spec(model)
        checkpoint = load_resume_checkpoint(run, model)
        trains = checkpoint.config.get("model")  # the stored spec (the checkpoint's gate keeps the two equal)
        if not isinstance(trains, str) or canonical_spec(trains) != model:
            raise ConfigError(f"--resume {resume}: run {run.name} trains {trains!r}, not {model!r}")
        if given.builder_options or given.config_file is not None:
            raise ConfigError("--resume continues the run as configured: --option and --config cannot be given with it")
        checkpoint.check_shapes()  # before the trainer builds the model for real
        config = RunConfig.from_dict({**checkpoint.config, "model": model}, f"checkpoint {run.last}")
        config = config.with_resume_overrides(given)
        data = run_data(checkpoint, run)  # --resume may not change data or split: the run's own, or refused
        return RunPlan(config, data.dataset, data.split, run, checkpoint)

    plugin = get_plugin(model)
    dataset = open_dataset(resolve_config(model, plugin, given=given).data)
    config = resolve_config(model, plugin, dataset_hints=dataset.recommended, given=given)
    # Refuse unknown builder options and a model breaking the contract now, before a run folder exists.
    probe_model(plugin.build(**config.options), config.input_size, f"model {plugin.name!r} ({plugin.origin})")
    return RunPlan(config, dataset, resolve_split(dataset, config.split))


class _RecordingObserver(TrainingObserver):
    """Passes every hook on, and after each epoch rewrites ``history.csv`` and the training curve and tells the
    tracker."""

    def __init__(self, inner: TrainingObserver, run: RunFolder, trainer: Trainer, title: str, tracker: Tracker) -> None:
        self.inner, self.run, self.trainer, self.title, self.tracker = inner, run, trainer, title, tracker

    def cache_progress(self, done: int, total: int) -> None:
        self.inner.cache_progress(done, total)

    def epoch_started(self, epoch: int, epochs: int, steps: int) -> None:
        self.inner.epoch_started(epoch, epochs, steps)

    def step_done(self, step: int, loss: float, images_per_second: float) -> None:
        self.inner.step_done(step, loss, images_per_second)

    def validation_progress(self, done: int, total: int) -> None:
        self.inner.validation_progress(done, total)

    def run_progress(self, progress: RunProgress) -> None:
        self.inner.run_progress(progress)

    def epoch_done(self, record: EpochRecord) -> None:
        write_history(self.run.history, self.trainer.history)
        write_training_curve(self.run.training_curve, self.trainer.history, self.title)
        self.tracker.log_epoch(record)
        self.inner.epoch_done(record)


def make_trainer(plan: RunPlan, *, sync_bn: bool | None = None) -> Trainer:
    """The trainer of a plan, restored from its checkpoint when resuming; ``sync_bn`` as in :class:`Trainer`.

    A new run's folder is created here, the one place run folders are made, once planning has worked; it is
    removed again when the trainer cannot be built (no such device, weights missing, unreadable data).
    """
    new = plan.run is None
    if new:
        plan.run = broadcast_object(RunFolder.create(plan.config.model, name=plan.config.name) if is_main() else None)
    try:
        provenance = plan.record().checkpoint_metrics()
        trainer = Trainer(
            plan.config,
            plan.dataset,
            plan.split,
            plan.run.path,
            sync_bn=sync_bn,
            provenance=provenance,
            resuming=plan.resume_from is not None,
        )
    except BaseException:
        if new and is_main() and not any(plan.run.path.iterdir()):
            plan.run.path.rmdir()
            plan.run = None
        raise
    if plan.resume_from is not None:
        trainer.resume(plan.resume_from)
    return trainer


@contextlib.contextmanager
def run_tracking(plan: RunPlan) -> Iterator[Tracker]:
    """The tracker of a run whose folder exists (``config.tracker`` on rank 0, none elsewhere), closed on leaving."""
    with tracking(plan.config.tracker if is_main() else "none", plan.run, plan.config) as tracker:
        yield tracker


def train_run(
    plan: RunPlan, trainer: Trainer, observer: TrainingObserver | None = None, tracker: Tracker | None = None
) -> TrainingResult:
    """Write config, environment and dataset records, then train; history, curve and ``tracker`` follow every epoch.

    Processes other than rank 0 write nothing and report nothing to ``observer`` or ``tracker``.
    """
    if not is_main():
        return trainer.fit()
    run = trainer.run
    write_json(run.config, plan.config.as_dict())
    write_json(run.environment, environment_info(trainer.device, trainer.precision, plan.config.model))
    write_json(run.dataset, plan.record().as_dict())
    title = f"{run.name}: {plan.config.model} on {plan.dataset.description} ({plan.split.name} split)"
    return trainer.fit(_RecordingObserver(observer or TrainingObserver(), run, trainer, title, tracker or NoTracker()))


def finish_run(
    plan: RunPlan,
    result: TrainingResult,
    *,
    measure_speed: bool,
    leaderboard: bool,
    progress: Any = None,
    tracker: Tracker | None = None,
) -> RunOutcome:
    """Score the best checkpoint on the validation split, optionally time it and rank it; write the summary.

    The scores are made at :data:`~medico.engine.runtime.MASK_PRECISION`, as ``submit`` writes masks, whatever
    precision training (and its per-epoch validation) ran at; the speed is timed at the training precision.

    Args:
        plan: the run.
        result: what training left.
        measure_speed: measure model FPS (batch 1, forward only) at the input size.
        leaderboard: add a ``val`` entry (source ``measured``) to the leaderboard store.
        progress: ``progress(done, total)`` during scoring.
        tracker: gets the scores and, if it logs them, overlays of the best and worst images (in ``RUN/overlays``).

    With several processes each scores a share of the images; rank 0 alone measures, ranks and writes.
    """
    config, run_dir = plan.config, result.run_dir
    model, checkpoint = load_model(result.best_checkpoint, model=config.model)  # the spec this run's user gave
    predictor = Predictor(model, checkpoint.input_size, result.device, MASK_PRECISION)
    evaluation = evaluate_sharded(
        predictor, plan.dataset, list(plan.split.val), batch_size=config.eval_batch_size, progress=progress
    )
    if is_main():
        evaluation.write(run_dir, prediction=prediction_record(predictor, [result.best_checkpoint], [checkpoint]))
        chosen = best_and_worst(evaluation.per_image, TRACKED_OVERLAYS)
        overlays = RunFolder(run_dir).overlays
        (tracker or NoTracker()).log_final(
            evaluation.summary, lambda: write_overlays(predictor, plan.dataset, chosen, overlays, replace=True)
        )
    speed = None
    if measure_speed and is_main():
        speed = measure_model_speed(model, checkpoint.input_size, device=result.device, precision=result.precision)
    sha256 = file_sha256(result.best_checkpoint)
    fingerprint = plan.dataset.fingerprint()
    entry = entry_id = None
    if leaderboard and is_main():
        entry = Entry.from_evaluation(
            evaluation,
            team=config.team or default_team().name,  # a config stored before it held the resolved team
            model=config.model,
            split="val",
            source="measured",
            speed=speed,
            run=run_number(run_dir),
            dataset_fingerprint=fingerprint,
            dataset=dataset_label(plan.dataset, plan.config.data, fingerprint),
            sha256=sha256,
            note=_note(plan, result),
        )
        entry_id = LeaderboardStore().add(entry)
    summary = _summary(plan, result, evaluation, speed, sha256, entry_id)
    # the 95% bootstrap intervals over images, as on the leaderboard
    summary["validation"]["intervals"] = {name: i.as_dict() for name, i in evaluation.intervals.items()}
    if is_main():
        write_json(RunFolder(run_dir).summary, summary)
    return RunOutcome(evaluation, speed, entry, entry_id, summary)


def dataset_label(dataset: Any, data: str | None, fingerprint: str) -> str:
    """A short name of the scored data for the leaderboard: the folder's (or zip's) name, or ``synthetic``, with the
    first 8 hex digits of its fingerprint, so results on other data or another copy are grouped apart."""
    name = "synthetic" if dataset.is_synthetic else Path(data).stem if data else "data"
    return f"{name} {fingerprint[:8]}"


def _note(plan: RunPlan, result: TrainingResult) -> str:
    data = "SYNTHETIC data" if plan.dataset.is_synthetic else plan.dataset.description
    return (
        f"run {result.run_dir.name}: {data}, {plan.split.name} split, input {plan.config.input_size}, "
        f"{len(result.history)} epochs (best {result.best_epoch}), {result.device.type} {result.precision}"
        + (f", budget {format_duration(result.budget)}" if result.budget is not None else "")
        + (", EMA weights" if plan.config.average == "ema" else "")
        + (f", {result.processes} processes" if result.processes > 1 else "")
    )


def _summary(
    plan: RunPlan,
    result: TrainingResult,
    evaluation: EvaluationResult,
    speed: SpeedResult | None,
    sha256: str,
    entry_id: int | None,
) -> dict[str, Any]:
    history = result.history
    return {
        "run": result.run_dir.name,
        "model": plan.config.model,
        "options": plan.config.options,
        "dataset": {
            "description": plan.dataset.description,
            "synthetic": bool(plan.dataset.is_synthetic),
            "fingerprint": plan.dataset.fingerprint(),
            "split": plan.split.name,
            "split_digest": plan.split.digest,
        },
        "validation": {
            "checkpoint": result.best_checkpoint.relative_to(result.run_dir).as_posix(),
            "checkpoint_sha256": sha256,
            "best_epoch": result.best_epoch,
            "precision": MASK_PRECISION,
            "scores": evaluation.summary,
        },
        "metric_policy": evaluation.policy,
        "training": {
            "epochs_run": len(history),
            "epochs_planned": plan.config.epochs,
            "stopped_early": result.stopped_early,
            "stopped_by": result.stopped_by,
            "max_time_seconds": result.budget,
            "elapsed_seconds": result.elapsed,
            "weight_average": plan.config.average,
            "seconds": sum(r.seconds for r in history),
            "images_per_second": (sum(r.images_per_second for r in history) / len(history)) if history else None,
            "device": str(result.device),
            "precision": result.precision,
            "threads": torch.get_num_threads(),
            "processes": result.processes,
            "sync_batchnorm": result.sync_bn,
            "loader_workers": result.workers,
        },
        "fps": speed.as_dict() if speed else None,
        "leaderboard_id": entry_id,
    }
