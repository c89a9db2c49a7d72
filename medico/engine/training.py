"""Training one model: optimiser, schedule, early stopping, the epoch loop, checkpoints and resuming.

After the source paper: BCE + soft Dice loss (:mod:`medico.engine.losses`), Adam with L2 by weight decay, the
learning rate reduced when the validation mIoU plateaus, early stopping on it, the best checkpoint by validation
mIoU kept beside the last. With a time budget (``max_time``, :mod:`medico.engine.budget`) the learning rate instead
anneals by a cosine over the budget's time, and training stops when the next step and the closing validation would
no longer fit, cutting the epoch under way short. With weight averaging (``average = "ema"``,
:mod:`medico.engine.averaging`) the averaged weights are the ones validated and checkpointed.

Before anything is timed, the training pairs the decoded cache lacks are decoded into it: the first epoch's steps then
take what every later epoch's take, and the run's expected length is measured on them.

Validation scores every epoch at each image's ORIGINAL resolution through
:func:`medico.engine.evaluation.evaluate`. Both checkpoints are written atomically after every epoch with the full
training state, so a run stopped at any point (Ctrl-C, a crash, a power cut) resumes from its last completed epoch.

With several processes (:mod:`medico.engine.distributed`) each trains on its shard of every epoch under
DistributedDataParallel, validation is shared out and gathered (so the lr schedule and early stopping follow the
same numbers everywhere), and rank 0 alone writes the checkpoints.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from medico.data.loader import PolypTrainingSet, default_workers, make_loader
from medico.engine.averaging import WeightAverage
from medico.engine.budget import Clock, TimeBudget, cosine_lr
from medico.engine.contract import check_output
from medico.engine.distributed import (
    barrier,
    broadcast_buffers,
    evaluate_sharded,
    is_main,
    local_device,
    local_rank,
    local_world_size,
    mean_over_ranks,
    per_rank_batch,
    prepare_model,
    rank,
    world_size,
)
from medico.engine.evaluation import ImageSource
from medico.engine.inference import Predictor
from medico.engine.losses import bce_dice_loss
from medico.engine.preprocess import normalize
from medico.engine.runtime import (
    autocast,
    autotune_convolutions,
    default_memory_format,
    resolve_device,
    resolve_precision,
)
from medico.errors import MedicoError, describe_error
from medico.plugins import ModelPlugin, get_plugin
from medico.runs.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from medico.runs.config import RunConfig
from medico.runs.folder import RunFolder
from medico.weights import LoadReport, WeightsError, WeightsSource, fetch_weights, load_matching, read_state_dict

__all__ = [
    "EarlyStopping",
    "EpochRecord",
    "NonFiniteLossError",
    "RunProgress",
    "STOP_BUDGET",
    "STOP_EARLY",
    "STOP_EPOCHS",
    "Trainer",
    "TrainingObserver",
    "TrainingResult",
    "build_model",
    "load_resume_checkpoint",
    "seed_everything",
]

SCORE = "iou"
"""The validation score that picks the best checkpoint, drives the lr schedule and early stopping (mIoU)."""

GPU_READBACK_STEPS = 10
"""On a GPU, training losses are read back (a wait for the device) once per this many steps."""

ESTIMATE_STEPS = 3
"""Training steps timed before the length of the whole run is estimated (the first one, warming up, is not)."""

STOP_EPOCHS, STOP_EARLY, STOP_BUDGET = "epochs", "early stopping", "budget"
"""Why training stopped: it ran its epochs, the validation score stopped improving, or the time budget ran out."""


class NonFiniteLossError(MedicoError):
    """The loss became NaN or infinite: training stops instead of going on with broken weights."""


class Split(Protocol):
    """What the trainer needs of a split: train and validation names, and how to name the split."""

    name: str
    train: Sequence[str]
    val: Sequence[str]


@dataclass
class EarlyStopping:
    """Stops after ``patience`` epochs without a better score (higher is better); patience 0 never stops."""

    patience: int
    best: float = -math.inf
    bad_epochs: int = 0

    def update(self, score: float) -> bool:
        """Record an epoch's score; True when it is the best so far."""
        if score > self.best:
            self.best, self.bad_epochs = score, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        """Whether the patience has run out."""
        return self.patience > 0 and self.bad_epochs >= self.patience


@dataclass(frozen=True)
class EpochRecord:
    """One line of the history: the epoch's training loss and speed, validation scores, lr and time."""

    epoch: int
    train_loss: float
    val_dice: float
    val_iou: float
    lr: float
    seconds: float
    images_per_second: float
    best: bool


@dataclass(frozen=True)
class RunProgress:
    """Where the whole run stands after a training step: for its progress bar and the estimate of its length.

    Attributes:
        epoch, epochs, step, steps: the epoch under way of at most ``epochs``, and its step of ``steps``.
        fraction: how much of the run is done, from 0 to 1 (with a budget, the lr schedule's progress).
        elapsed: seconds the run has taken, earlier sessions included; ``budget`` its budget (None: none).
        step_seconds: seconds per training step, once a few are timed; ``validation_seconds`` of the last
            validation and checkpoints (None until one is done in this session).
    """

    epoch: int
    epochs: int
    step: int
    steps: int
    fraction: float
    elapsed: float
    budget: float | None
    step_seconds: float | None
    validation_seconds: float | None

    @property
    def seconds_left(self) -> float | None:
        """The expected time to the end: the epochs left at the measured speed, validations included, or the budget
        left if it ends sooner; None until steps are timed. Early stopping may end the run sooner still."""
        if self.step_seconds is None:
            return None
        steps_left = (self.epochs - self.epoch) * self.steps + self.steps - self.step
        by_epochs = steps_left * self.step_seconds + (self.epochs - self.epoch + 1) * (self.validation_seconds or 0.0)
        return by_epochs if self.budget is None else min(by_epochs, max(self.budget - self.elapsed, 0.0))

    @property
    def budget_binds(self) -> bool:
        """Whether the budget, rather than the epoch count, is expected to end the run."""
        left = self.seconds_left
        return self.budget is not None and left is not None and left >= self.budget - self.elapsed - 1e-9


@dataclass(frozen=True)
class TrainingResult:
    """What :meth:`Trainer.fit` leaves: the history, the best epoch, why it stopped and the time it took."""

    run_dir: Path
    history: list[EpochRecord]
    best_epoch: int | None
    best_score: float
    stopped_by: str
    device: torch.device
    precision: str
    processes: int = 1
    sync_bn: bool = False
    workers: int = 0
    elapsed: float = 0.0
    budget: float | None = None

    @property
    def stopped_early(self) -> bool:
        """Whether the run stopped before its epochs: no better validation score, or the budget ran out."""
        return self.stopped_by != STOP_EPOCHS

    @property
    def best_checkpoint(self) -> Path:
        """The weights of the epoch with the best validation mIoU."""
        return RunFolder(self.run_dir).best

    @property
    def last_checkpoint(self) -> Path:
        """The last completed epoch, with everything needed to resume."""
        return RunFolder(self.run_dir).last


class TrainingObserver:
    """Hooks through which the command line shows progress; each does nothing unless overridden."""

    def cache_progress(self, done: int, total: int) -> None:
        """Training pairs decoded into the cache so far, of the ``total`` it lacked, before anything is timed."""

    def epoch_started(self, epoch: int, epochs: int, steps: int) -> None:
        """An epoch of ``steps`` batches begins."""

    def step_done(self, step: int, loss: float, images_per_second: float) -> None:
        """A batch was trained: its loss and the epoch's running throughput."""

    def validation_progress(self, done: int, total: int) -> None:
        """Validation images scored so far."""

    def run_progress(self, progress: RunProgress) -> None:
        """Where the whole run stands (after a step whose loss was read back)."""

    def epoch_done(self, record: EpochRecord) -> None:
        """An epoch ended and its checkpoints are written."""


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so a run repeats on the same machine."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    # NumPy's state holds an ndarray, which weights_only loading refuses: store it as a tensor.
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _restore_rng(state: dict[str, Any]) -> None:
    random.setstate(_as_tuple(state["python"]))
    kind, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and state["cuda"]:
        # One state per GPU saved; a machine with fewer GPUs restores those it has (exact repeats need the same).
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])


def _as_tuple(value: Any) -> Any:
    """Lists back to tuples, recursively (``random.setstate`` wants the tuples it gave)."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list | tuple) else value


def _pretrained_source(plugin: ModelPlugin, pretrained: str) -> WeightsSource:
    if pretrained in plugin.pretrained:
        return plugin.pretrained[pretrained]
    if pretrained.startswith(("http://", "https://", "file://")):
        return WeightsSource(url=pretrained)
    if Path(pretrained).is_file():
        return WeightsSource(path=Path(pretrained))
    named = ", ".join(plugin.pretrained) or "none"
    raise WeightsError(
        f"--pretrained {pretrained!r}: not a named weight of model {plugin.name!r} (it has: {named}), "
        "nor an existing file, nor an http(s) URL"
    )


def build_model(config: RunConfig) -> tuple[nn.Module, LoadReport | None]:
    """The configured model, with pretrained weights loaded where keys and shapes match.

    Raises:
        WeightsError: the weights cannot be fetched or read, or not one tensor fits the model.
    """
    plugin = get_plugin(config.model)
    model = plugin.build(**config.options)
    if config.pretrained is None:
        return model, None
    path = fetch_weights(_pretrained_source(plugin, config.pretrained))
    report = load_matching(model, read_state_dict(path))
    if not report.loaded:
        raise WeightsError(
            f"--pretrained {config.pretrained}: no tensor of {path} matches model {config.model!r} "
            f"with options {config.options} (key names or shapes differ)"
        )
    return model, report


class Trainer:
    """Trains ``config.model`` on ``split.train`` of ``dataset``, validating on ``split.val`` every epoch.

    State (model, optimizer, scheduler, early stopping, epoch, history, RNG) lives here and in the run's
    ``last.pt``; :meth:`resume` restores it from there. ``provenance`` (the run's data record, see
    :mod:`medico.runs.dataset`) goes into every checkpoint's metrics, so that a checkpoint knows what it was
    validated on wherever it is copied.

    On CPU a run repeats exactly with the same seed, thread count, precision and number of processes. Weights
    and batches are channels_last everywhere; on CUDA cuDNN autotuning trades bitwise repeatability for speed.

    In a process group (:mod:`medico.engine.distributed`) ``config.batch_size`` is the global batch, split evenly over
    the processes; ``sync_bn`` turns BatchNorm into SyncBatchNorm (None: on GPUs yes, on CPUs no). A trainer
    ``resuming`` a run builds its model without the pretrained weights, which :meth:`resume` replaces anyway.
    ``clock`` is where the budget and every duration are read (tests pass a fake one). With ``config.max_time`` the
    lr follows the budget's cosine instead of the plateau rule; with ``config.average`` of ``ema`` the average
    (``self.average``) is what is validated and saved as the checkpoints' model.
    """

    def __init__(
        self,
        config: RunConfig,
        dataset: ImageSource,
        split: Split,
        run_dir: Path,
        *,
        sync_bn: bool | None = None,
        provenance: Mapping[str, Any] | None = None,
        resuming: bool = False,
        clock: Clock = time.monotonic,
    ) -> None:
        self.config = config
        self.dataset = dataset
        self.split = split
        self.run = RunFolder(Path(run_dir))
        self.provenance = dict(provenance or {})
        self.device = local_device(resolve_device(config.device))
        self.precision = resolve_precision(self.device, config.precision)
        self.processes = world_size()
        self.batch_size = per_rank_batch(config.batch_size)
        seed_everything(config.seed)
        # resuming: the weights come from last.pt, and the source its config names (any file or URL) is not fetched
        built = dataclasses.replace(config, pretrained=None) if resuming else config
        model, self.pretrained_report = build_model(built)
        autotune_convolutions()  # fixed input size: autotuned kernels pay off from epoch 1
        # self.model is what is saved and validated; self.step_model what a training step calls (with several
        # processes the DDP wrapper around it, whose backward averages the gradients over the processes).
        # Validation keeps this layout too: a Predictor converts the model it is given in place.
        self.memory_format = default_memory_format(self.device, training=True)
        self.model, self.step_model, self.sync_bn = prepare_model(
            model.to(self.device, memory_format=self.memory_format), self.device, sync_bn
        )
        # The weights validated and checkpointed: an average of the trained ones, or those themselves.
        self.average = WeightAverage(self.model, config.ema_decay) if config.average == "ema" else None
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        # Stepped only without a budget (with one the cosine over time sets the lr); kept so --resume may add one.
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="max", factor=config.lr_factor, patience=config.lr_patience, min_lr=config.min_lr
        )
        # Loss scaling only for fp16: bf16 has fp32's exponent range, fp32 needs none.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        # A CPU step is synchronous anyway; a GPU would idle while every step's loss is read back, so there the
        # losses (for the NaN guard and the progress bar) are read back a few steps at a time.
        self.readback_every = 1 if self.device.type == "cpu" else GPU_READBACK_STEPS
        auto = config.workers == "auto"
        self.workers = default_workers(self.device, local_world_size()) if auto else int(config.workers)
        self.stopper = EarlyStopping(config.early_stopping)
        self.epoch = 0
        self.history: list[EpochRecord] = []
        self.clock = clock
        self.budget = TimeBudget(config.max_time, clock)
        self.step_seconds: float | None = None  # measured in this session, once ESTIMATE_STEPS are timed
        self._warm, self._timed = False, (0.0, 0)  # past the first readback; (seconds, steps) timed since
        self.validation_seconds: float | None = None
        self.train_set = PolypTrainingSet(
            dataset, list(split.train), config.input_size, augment=config.augment, seed=config.seed
        )
        # One loader for the whole run: its workers (if any) persist from epoch to epoch.
        self.loader = make_loader(
            self.train_set, self.batch_size, shuffle=True, seed=config.seed, workers=self.workers, rank=rank(),
            world=self.processes, pin_memory=self.device.type == "cuda",
        )

    def resume(self, checkpoint: Checkpoint) -> None:
        """Continue from a ``last.pt``: weights, optimizer, scheduler, early stopping, epoch, history, RNG."""
        state = checkpoint.training
        if not state or "optimizer" not in state:
            raise CheckpointError(f"{self.run.last} holds no training state to resume from")
        try:  # the file is data: a state of the wrong shape or type is refused with its name, not a traceback
            # With averaging the checkpoint's model is the average, and the weights as trained are kept beside it.
            self.model.load_state_dict(state["weights"] if self.average is not None else checkpoint.model)
            if self.average is not None:
                self.average.module.load_state_dict(checkpoint.model)
                self.average.updates = _count(state["average_updates"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if state["scaler"]:  # empty when the run so far was not fp16: a new fp16 scaler starts afresh
                self.scaler.load_state_dict(state["scaler"])
            self.stopper = EarlyStopping(**state["early_stopping"])
            self.epoch = int(state["epoch"])
            self.history = [EpochRecord(**row) for row in state["history"]]
            # The budget counts the time of the epochs kept (an interrupted epoch's time is given back).
            spent = state.get("budget", {"elapsed": sum(r.seconds for r in self.history), "reserve": 0.0})
            self.budget.spent, self.budget.reserve = _seconds(spent["elapsed"]), _seconds(spent["reserve"])
            if spent.get("step_seconds") is not None:  # the speed last measured, until this session measures its own
                self.step_seconds = _seconds(spent["step_seconds"])
            _restore_rng(state["rng"])
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as error:
            raise CheckpointError(
                f"{self.run.last}: its training state cannot be restored ({describe_error(error)}); start a new run"
            ) from error

    @property
    def validated(self) -> nn.Module:
        """The model that is validated and checkpointed: the weight average when there is one, else the model."""
        return self.average.module if self.average is not None else self.model

    def fit(self, observer: TrainingObserver | None = None) -> TrainingResult:
        """Train until ``config.epochs``, early stopping or the time budget; checkpoints after every epoch.

        Raises:
            NonFiniteLossError: the loss became NaN or infinite (the message names the epoch and step).
            KeyboardInterrupt: passed on; ``last.pt`` then holds the last completed epoch.
        """
        observer = observer or TrainingObserver()
        self._fill_cache(observer)
        self.budget.start()
        stopped_by = self._stop_reason(self._elapsed())
        while stopped_by is None:
            epoch = self.epoch + 1
            started = self._elapsed()
            self._anneal(0, len(self.loader), started)
            lr = self.optimizer.param_groups[0]["lr"]
            train_loss, images_per_second = self._train_epoch(epoch, observer)
            closing = self._elapsed()
            scores = self.validate(observer)
            if self.budget.seconds is None:
                self.scheduler.step(scores[SCORE])
            improved = self.stopper.update(scores[SCORE])
            record = EpochRecord(
                epoch=epoch,
                train_loss=train_loss,
                val_dice=scores["dice"],
                val_iou=scores["iou"],
                lr=lr,
                seconds=self._elapsed() - started,
                images_per_second=images_per_second,
                best=improved,
            )
            self.history.append(record)
            self.epoch = epoch
            elapsed = self._elapsed()  # every process asks (with a budget, a collective); rank 0 records it
            if is_main():
                if improved:
                    self._save(self.run.best, scores, elapsed)
                self._save(self.run.last, scores, elapsed)
            barrier()  # the checkpoints exist before any process goes on (finish_run reads best.pt everywhere)
            # What ends every epoch, kept free at the end of the budget: validation and checkpoints, as last measured.
            self.validation_seconds = self.budget.reserve = self._elapsed() - closing
            observer.epoch_done(record)
            stopped_by = self._stop_reason(self._elapsed())
        best = [r for r in self.history if r.best]
        return TrainingResult(
            run_dir=self.run.path,
            history=list(self.history),
            best_epoch=best[-1].epoch if best else None,
            best_score=self.stopper.best,
            stopped_by=stopped_by,
            device=self.device,
            precision=self.precision,
            processes=self.processes,
            sync_bn=self.sync_bn,
            workers=self.workers,
            elapsed=self._elapsed(),
            budget=self.budget.seconds,
        )

    def _fill_cache(self, observer: TrainingObserver) -> None:
        """Decode the training pairs the cache lacks before the clock starts: decoding a pair costs far more than
        training on it at a small input size, so steps timed while the cache filled would say the run takes many
        times longer than it does. Filled once per input size, outside the budget; each process of this machine
        decodes a share."""
        missing = self.train_set.uncached()
        barrier()  # every process listed the same pairs before any decodes its share
        share = missing[local_rank() :: local_world_size()]
        self.train_set.fill_cache(share, workers=self.workers, progress=observer.cache_progress)
        barrier()  # the cache holds every pair before any process trains

    def _stop_reason(self, elapsed: float) -> str | None:
        """Why training must stop before another epoch (None: it goes on)."""
        if self.stopper.should_stop:
            return STOP_EARLY
        if self.epoch >= self.config.epochs:
            return STOP_EPOCHS
        if self.budget.exhausted(elapsed, self.step_seconds or 0.0):
            return STOP_BUDGET
        return None

    def _elapsed(self) -> float:
        """The run's elapsed seconds; with a budget and several processes their mean, so that all stop together."""
        elapsed = self.budget.elapsed()
        if self.processes > 1 and self.budget.seconds is not None:
            elapsed = mean_over_ranks(torch.tensor([elapsed], dtype=torch.float64, device=self.device)).item()
        return elapsed

    def _progress(self, steps_done: int, steps: int, elapsed: float) -> float:
        """How much of the run is done after ``steps_done`` steps in all (of ``steps`` an epoch) and ``elapsed``
        seconds, 0 to 1: the share of its epochs' steps, or of the budget's horizon when that is further along."""
        return min(max(steps_done / max(self.config.epochs * steps, 1), self.budget.progress(elapsed)), 1.0)

    def _anneal(self, step: int, steps: int, elapsed: float) -> None:
        """With a budget, set the lr of the step after ``step`` of the epoch under way (of ``steps``), ``elapsed``
        seconds in: the cosine from ``config.lr`` to ``config.min_lr`` at the time that step is expected to end, and
        ``min_lr`` itself when no step is expected to fit after it (it ends its epoch and no other epoch would fit)."""
        if self.budget.seconds is None:
            return
        seconds = self.step_seconds or 0.0
        end = elapsed + seconds
        last = self.budget.exhausted(end if step + 1 < steps else end + self.budget.reserve, seconds)
        progress = 1.0 if last else self._progress(self.epoch * steps + step + 1, steps, end)
        for group in self.optimizer.param_groups:
            group["lr"] = cosine_lr(self.config.lr, self.config.min_lr, progress)

    def _train_epoch(self, epoch: int, observer: TrainingObserver) -> tuple[float, float]:
        """One pass over the training set, cut short when the budget runs out; returns the mean loss per image and
        images per second (all processes)."""
        config = self.config
        # Order and augmentation depend on (seed, epoch) only, so a resumed run repeats the epochs it missed.
        loader = self.loader
        loader.sampler.set_epoch(epoch)
        steps = len(loader)
        observer.epoch_started(epoch, config.epochs, steps)
        self.step_model.train()
        total_loss, seen, started = 0.0, 0, self.clock()
        pending: list[torch.Tensor] = []  # losses still on the device, read back every `readback_every` steps
        batch_images: list[int] = []  # images per pending step
        mark = (0, self._elapsed())  # the step and time of the last readback, from which steps are timed
        for step, (images, masks) in enumerate(loader, start=1):
            images = normalize(images.to(self.device, non_blocking=True, memory_format=self.memory_format))
            masks = masks.to(self.device, non_blocking=True).float()
            with autocast(self.device, self.precision):
                logits = check_output(self.step_model(images), images, f"model {config.model!r}")
            loss = bce_dice_loss(logits, masks)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.average is not None:
                self.average.update(self.model)
            pending.append(loss.detach())
            batch_images.append(len(images))
            if len(pending) < self.readback_every and step < steps:
                continue
            # Reading back waits for the device; the NaN guard and the progress bar both need the values. The
            # mean over the processes makes a NaN anywhere stop every process at the same step.
            values = mean_over_ranks(torch.stack(pending)).tolist()
            first = step - len(values) + 1
            for offset, value in enumerate(values):
                if not math.isfinite(value):
                    self._raise_non_finite(value, epoch, first + offset, steps)
            total_loss += sum(v * n for v, n in zip(values, batch_images)) * self.processes
            seen += sum(batch_images) * self.processes
            pending, batch_images = [], []
            observer.step_done(step, values[-1], seen / max(self.clock() - started, 1e-9))
            elapsed = self._elapsed()
            if self._warm:  # the session's first steps warm up (allocations, autotuning): not timed
                self._timed = (self._timed[0] + elapsed - mark[1], self._timed[1] + step - mark[0])
            self._warm, mark = True, (step, elapsed)
            if self._timed[1] >= min(ESTIMATE_STEPS, steps) or (self._timed[1] and step == steps):
                self.step_seconds = self._timed[0] / self._timed[1]
            self._anneal(step, steps, elapsed)
            observer.run_progress(
                RunProgress(
                    epoch=epoch,
                    epochs=config.epochs,
                    step=step,
                    steps=steps,
                    fraction=self._progress((epoch - 1) * steps + step, steps, elapsed),
                    elapsed=elapsed,
                    budget=self.budget.seconds,
                    step_seconds=self.step_seconds,
                    validation_seconds=self.validation_seconds,
                )
            )
            if step < steps and self.budget.exhausted(elapsed, self.step_seconds or 0.0):
                break  # the rest of the budget is for validating and saving this epoch
        return total_loss / max(seen, 1), seen / max(self.clock() - started, 1e-9)

    def _raise_non_finite(self, value: float, epoch: int, step: int, steps: int) -> None:
        raise NonFiniteLossError(
            f"the training loss became {value} at epoch {epoch}, step {step} of {steps}; stopped "
            f"instead of training on. Try a lower --lr (now {self.optimizer.param_groups[0]['lr']:g})"
            + ("" if self.precision == "fp32" else " or --precision fp32")
            + f". The last good epoch is in {self.run.last} (if any)."
        )

    def validate(self, observer: TrainingObserver | None = None) -> dict[str, float]:
        """Mean validation scores of the current weights at each image's original resolution.

        With several processes each scores its share of the images with rank 0's BatchNorm statistics; the
        gathered scores are the same on every process.
        """
        observer = observer or TrainingObserver()
        broadcast_buffers(self.validated)
        predictor = Predictor(
            self.validated, self.config.input_size, self.device, self.precision, memory_format=self.memory_format
        )
        result = evaluate_sharded(
            predictor,
            self.dataset,
            list(self.split.val),
            batch_size=self.config.eval_batch_size,
            progress=observer.validation_progress,
        )
        return result.summary

    def _save(self, path: Path, scores: dict[str, float], elapsed: float) -> Path:
        training = {
            "epoch": self.epoch,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "early_stopping": dataclasses.asdict(self.stopper),
            "history": [dataclasses.asdict(r) for r in self.history],
            "rng": _rng_state(),
            "device": str(self.device),
            "precision": self.precision,
            "processes": self.processes,
            "sync_bn": self.sync_bn,
            "budget": {
                "elapsed": elapsed,
                "reserve": self.budget.reserve,
                "seconds": self.budget.seconds,
                "step_seconds": self.step_seconds,
            },
        }
        if self.average is not None:
            training["weights"] = _cpu_weights(self.model)
            training["average_updates"] = self.average.updates
        checkpoint = Checkpoint(
            model_spec=self.config.model,
            model_options=dict(self.config.options),
            input_size=self.config.input_size,
            model=_cpu_weights(self.validated),
            config=self.config.as_dict(),
            training=training,
            metrics={"epoch": self.epoch, "split": self.split.name, **scores, **self.provenance},
        )
        return save_checkpoint(path, checkpoint)


def _count(value: Any) -> int:
    """A count stored in a checkpoint; a ValueError unless it is a whole number of at least 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a count, got {value!r}")
    return value


def _seconds(value: Any) -> float:
    """A duration stored in a checkpoint; a ValueError unless it is a finite number of at least 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"expected seconds, got {value!r}")
    return float(value)


def _cpu_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s state on the CPU, contiguous, as a checkpoint holds it."""
    return {k: v.detach().to("cpu", memory_format=torch.contiguous_format) for k, v in model.state_dict().items()}


def load_resume_checkpoint(run: RunFolder, model: str) -> Checkpoint:
    """The ``last.pt`` of a run to resume with ``model`` (the spec the user typed: their trust in its code, see
    :func:`medico.runs.checkpoint.load_checkpoint`), with a clear error when the run has none."""
    if not run.last.is_file():
        raise CheckpointError(
            f"--resume {run.name}: {run.last} is missing (the run ended before its first epoch); start a new run"
        )
    return load_checkpoint(run.last, model=model)
