"""Training one model: optimiser, schedule, early stopping, the epoch loop, checkpoints and resuming.

After the source paper: BCE + soft Dice loss (:mod:`medico.engine.losses`), Adam with L2 by weight decay, the
learning rate reduced when the validation mIoU plateaus, early stopping on it, the best checkpoint by validation
mIoU kept beside the last. Validation scores every epoch at each image's ORIGINAL resolution through
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
from medico.engine.contract import check_output
from medico.engine.distributed import (
    barrier,
    broadcast_buffers,
    evaluate_sharded,
    is_main,
    local_device,
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
from medico.engine.runtime import MEMORY_FORMAT, autocast, autotune_convolutions, resolve_device, resolve_precision
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
class TrainingResult:
    """What :meth:`Trainer.fit` leaves: the history, the best epoch and why it stopped."""

    run_dir: Path
    history: list[EpochRecord]
    best_epoch: int | None
    best_score: float
    stopped_early: bool
    device: torch.device
    precision: str
    processes: int = 1
    sync_bn: bool = False
    workers: int = 0

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

    def epoch_started(self, epoch: int, epochs: int, steps: int) -> None:
        """An epoch of ``steps`` batches begins."""

    def step_done(self, step: int, loss: float, images_per_second: float) -> None:
        """A batch was trained: its loss and the epoch's running throughput."""

    def validation_progress(self, done: int, total: int) -> None:
        """Validation images scored so far."""

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
        self.model, self.step_model, self.sync_bn = prepare_model(
            model.to(self.device, memory_format=MEMORY_FORMAT), self.device, sync_bn
        )
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
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
            self.model.load_state_dict(checkpoint.model)
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if state["scaler"]:  # empty when the run so far was not fp16: a new fp16 scaler starts afresh
                self.scaler.load_state_dict(state["scaler"])
            self.stopper = EarlyStopping(**state["early_stopping"])
            self.epoch = int(state["epoch"])
            self.history = [EpochRecord(**row) for row in state["history"]]
            _restore_rng(state["rng"])
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as error:
            raise CheckpointError(
                f"{self.run.last}: its training state cannot be restored ({describe_error(error)}); start a new run"
            ) from error

    def fit(self, observer: TrainingObserver | None = None) -> TrainingResult:
        """Train until ``config.epochs`` or early stopping; checkpoints after every epoch.

        Raises:
            NonFiniteLossError: the loss became NaN or infinite (the message names the epoch and step).
            KeyboardInterrupt: passed on; ``last.pt`` then holds the last completed epoch.
        """
        observer = observer or TrainingObserver()
        stopped_early = self.stopper.should_stop
        while self.epoch < self.config.epochs and not stopped_early:
            epoch = self.epoch + 1
            started = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            train_loss, images_per_second = self._train_epoch(epoch, observer)
            scores = self.validate(observer)
            self.scheduler.step(scores[SCORE])
            improved = self.stopper.update(scores[SCORE])
            record = EpochRecord(
                epoch=epoch,
                train_loss=train_loss,
                val_dice=scores["dice"],
                val_iou=scores["iou"],
                lr=lr,
                seconds=time.perf_counter() - started,
                images_per_second=images_per_second,
                best=improved,
            )
            self.history.append(record)
            self.epoch = epoch
            if is_main():
                if improved:
                    self._save(self.run.best, scores)
                self._save(self.run.last, scores)
            barrier()  # the checkpoints exist before any process goes on (finish_run reads best.pt everywhere)
            observer.epoch_done(record)
            stopped_early = self.stopper.should_stop
        best = [r for r in self.history if r.best]
        return TrainingResult(
            run_dir=self.run.path,
            history=list(self.history),
            best_epoch=best[-1].epoch if best else None,
            best_score=self.stopper.best,
            stopped_early=stopped_early,
            device=self.device,
            precision=self.precision,
            processes=self.processes,
            sync_bn=self.sync_bn,
            workers=self.workers,
        )

    def _train_epoch(self, epoch: int, observer: TrainingObserver) -> tuple[float, float]:
        """One pass over the training set; returns the mean loss per image and images per second (all processes)."""
        config = self.config
        # Order and augmentation depend on (seed, epoch) only, so a resumed run repeats the epochs it missed.
        loader = self.loader
        loader.sampler.set_epoch(epoch)
        observer.epoch_started(epoch, config.epochs, len(loader))
        self.step_model.train()
        total_loss, seen, started = 0.0, 0, time.perf_counter()
        pending: list[torch.Tensor] = []  # losses still on the device, read back every `readback_every` steps
        batch_images: list[int] = []  # images per pending step
        for step, (images, masks) in enumerate(loader, start=1):
            images = normalize(images.to(self.device, non_blocking=True, memory_format=MEMORY_FORMAT))
            masks = masks.to(self.device, non_blocking=True).float()
            with autocast(self.device, self.precision):
                logits = check_output(self.step_model(images), images, f"model {config.model!r}")
            loss = bce_dice_loss(logits, masks)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            pending.append(loss.detach())
            batch_images.append(len(images))
            if len(pending) < self.readback_every and step < len(loader):
                continue
            # Reading back waits for the device; the NaN guard and the progress bar both need the values. The
            # mean over the processes makes a NaN anywhere stop every process at the same step.
            values = mean_over_ranks(torch.stack(pending)).tolist()
            first = step - len(values) + 1
            for offset, value in enumerate(values):
                if not math.isfinite(value):
                    self._raise_non_finite(value, epoch, first + offset, len(loader))
            total_loss += sum(v * n for v, n in zip(values, batch_images)) * self.processes
            seen += sum(batch_images) * self.processes
            pending, batch_images = [], []
            observer.step_done(step, values[-1], seen / max(time.perf_counter() - started, 1e-9))
        return total_loss / max(seen, 1), seen / max(time.perf_counter() - started, 1e-9)

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
        broadcast_buffers(self.model)
        predictor = Predictor(self.model, self.config.input_size, self.device, self.precision)
        result = evaluate_sharded(
            predictor,
            self.dataset,
            list(self.split.val),
            batch_size=self.config.eval_batch_size,
            progress=observer.validation_progress,
        )
        return result.summary

    def _save(self, path: Path, scores: dict[str, float]) -> Path:
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
        }
        weights = {
            k: v.detach().to("cpu", memory_format=torch.contiguous_format) for k, v in self.model.state_dict().items()
        }
        checkpoint = Checkpoint(
            model_spec=self.config.model,
            model_options=dict(self.config.options),
            input_size=self.config.input_size,
            model=weights,
            config=self.config.as_dict(),
            training=training,
            metrics={"epoch": self.epoch, "split": self.split.name, **scores, **self.provenance},
        )
        return save_checkpoint(path, checkpoint)


def load_resume_checkpoint(run: RunFolder, model: str) -> Checkpoint:
    """The ``last.pt`` of a run to resume with ``model`` (the spec the user typed: their trust in its code, see
    :func:`medico.runs.checkpoint.load_checkpoint`), with a clear error when the run has none."""
    if not run.last.is_file():
        raise CheckpointError(
            f"--resume {run.name}: {run.last} is missing (the run ended before its first epoch); start a new run"
        )
    return load_checkpoint(run.last, model=model)
