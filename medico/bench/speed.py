"""Speed: model FPS (forward only), end-to-end FPS (decode to thresholded mask), training and data-pipeline
images/s, plus forward FLOPs.

Both are medians over repeated timed runs after a warm-up, with ``torch.cuda.synchronize()`` around every timed
region on CUDA (kernels are asynchronous: without it the clock stops before the GPU has finished). The result
records what was timed, the device, precision, threads and torch version, so numbers are never compared blind.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from medico.data.io import read_rgb
from medico.data.loader import PolypTrainingSet, default_workers, make_loader
from medico.engine.contract import probe_model
from medico.engine.inference import Predictor
from medico.engine.losses import bce_dice_loss
from medico.engine.runtime import autocast, default_memory_format, device_name
from medico.errors import MedicoError
from medico.plugins import TrainingDefaults, UnknownModelError, get_plugin, is_model
from medico.runs.checkpoint import load_model
from medico.runs.config import check_setting
from medico.runs.folder import RunNotFoundError, resolve_checkpoint

__all__ = [
    "FLOP_CONVENTION",
    "BenchmarkTarget",
    "SpeedResult",
    "benchmark_target",
    "count_flops",
    "measure_end_to_end_speed",
    "measure_loader_speed",
    "measure_training_pipeline",
    "measure_model_speed",
    "measure_training_speed",
    "time_call",
]

FLOP_CONVENTION = "torch.utils.flop_counter: a multiply-add counts as 2 FLOPs; convolutions and matmuls only"


@dataclass(frozen=True)
class SpeedResult:
    """One speed measurement: images/s (median, slowest and fastest run), latency per batch and the setting.

    ``workers`` is the number of loader worker processes (data pipeline only).
    """

    kind: Literal["model", "end-to-end", "training", "data pipeline"]
    fps: float
    fps_min: float
    fps_max: float
    latency_ms: float
    batch_size: int
    input_size: int
    device: str
    precision: str
    threads: int
    torch_version: str
    workers: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class BenchmarkTarget:
    """What to time: a model, the input size it runs at, and a label saying where it came from."""

    model: nn.Module
    input_size: int
    label: str

    @property
    def parameters(self) -> int:
        """The number of parameters (trainable or not)."""
        return sum(p.numel() for p in self.model.parameters())


def benchmark_target(model_or_checkpoint: str, *, model: str | None = None) -> BenchmarkTarget:
    """A ``.pt`` checkpoint file, a registered model name or spec (fresh weights, the plugin's input size), or a run.

    Weights do not change the speed of these models, so a model name is enough to time an architecture. ``model``
    is the spec the user trusts to build a checkpoint with (see :func:`medico.runs.checkpoint.load_checkpoint`).
    """
    if Path(model_or_checkpoint).is_file() and not model_or_checkpoint.endswith(".py"):
        network, checkpoint = load_model(resolve_checkpoint(model_or_checkpoint), model=model)  # it may name a run
        return BenchmarkTarget(network, checkpoint.input_size, f"checkpoint {model_or_checkpoint}")
    if is_model(model_or_checkpoint) or ":" in model_or_checkpoint:
        if model is not None:
            raise MedicoError(f"--model {model!r}: only for a checkpoint or a run; {model_or_checkpoint!r} is a model")
        plugin = get_plugin(model_or_checkpoint)
        size = plugin.defaults.input_size
        model = probe_model(plugin.build(), size, f"model {plugin.name!r} ({plugin.origin})")
        return BenchmarkTarget(model.eval(), size, f"model {plugin.name} (untrained)")
    try:
        path = resolve_checkpoint(model_or_checkpoint)
    except RunNotFoundError as run_error:
        try:
            get_plugin(model_or_checkpoint)
        except UnknownModelError as model_error:
            raise UnknownModelError(f"{model_error} Nor is it a checkpoint or a run: {run_error}") from run_error
        raise
    network, checkpoint = load_model(path, model=model)
    return BenchmarkTarget(network, checkpoint.input_size, f"checkpoint {path}")


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        if name in ("input_size", "batch_size", "workers"):  # bounded as a run's are (medico.runs.config)
            check_setting(name, value)
            continue
        minimum = 0 if name == "warmup" else 1
        if value < minimum:
            raise MedicoError(f"{name}: expected an integer >= {minimum}, got {value}")


def time_call(device: torch.device, step: Callable[[], object]) -> float:
    """Seconds taken by ``step``, synchronising CUDA before and after so queued kernels are counted."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def _result(
    kind: Literal["model", "end-to-end", "training", "data pipeline"],
    seconds: Sequence[float],
    *,
    batch_size: int,
    input_size: int,
    device: torch.device,
    precision: str,
    workers: int | None = None,
) -> SpeedResult:
    median = statistics.median(seconds)
    return SpeedResult(
        kind=kind,
        fps=batch_size / median,
        fps_min=batch_size / max(seconds),
        fps_max=batch_size / min(seconds),
        latency_ms=median * 1000,
        batch_size=batch_size,
        input_size=input_size,
        device=device_name(device),
        precision=precision,
        threads=torch.get_num_threads(),
        torch_version=torch.__version__,
        workers=workers,
    )


def measure_model_speed(
    model: nn.Module,
    input_size: int,
    *,
    device: torch.device | str,
    precision: str = "fp32",
    batch_size: int = 1,
    warmup: int = 3,
    repeats: int = 10,
    memory_format: torch.memory_format | None = None,
) -> SpeedResult:
    """Forward-only images/s of ``model`` (moved to ``device``, eval mode) on a random ``(B, 3, S, S)`` batch.

    Args:
        model: a plugin's model.
        input_size: the square input side ``S``.
        device: where to run.
        precision: 'fp32', 'bf16' or 'fp16' autocast.
        batch_size: images per forward pass ``B``.
        warmup: untimed passes first (allocator, cuDNN autotuning, lazy init).
        repeats: timed passes; the median gives ``fps``, the slowest and fastest ``fps_min``/``fps_max``.
        memory_format: layout of weights and input (None: medico's inference default on ``device``;
            contiguous_format is the plain eager baseline).
    """
    _check_counts(input_size=input_size, batch_size=batch_size, warmup=warmup, repeats=repeats)
    device = torch.device(device)
    memory_format = memory_format if memory_format is not None else default_memory_format(device)
    model = model.to(device, memory_format=memory_format).eval()
    batch = _random_batch(batch_size, input_size, device, memory_format)

    def forward() -> torch.Tensor:
        with autocast(device, precision):
            return model(batch)

    with torch.inference_mode():
        for _ in range(warmup):
            forward()
        seconds = [time_call(device, forward) for _ in range(repeats)]
    return _result("model", seconds, batch_size=batch_size, input_size=input_size, device=device, precision=precision)


def measure_training_speed(
    model: nn.Module,
    input_size: int,
    *,
    device: torch.device | str,
    precision: str = "fp32",
    batch_size: int = 16,
    warmup: int = 1,
    repeats: int = 3,
    memory_format: torch.memory_format | None = None,
) -> SpeedResult:
    """Training images/s: forward, the BCE + Dice loss, backward and an Adam step on a random batch.

    The model is trained on a copy of itself (deep-copied) so that timing never changes the caller's weights.
    ``warmup`` steps are untimed; ``fps`` is ``batch_size`` over the median step time. ``memory_format`` None is
    medico's training default on ``device``.
    """
    _check_counts(input_size=input_size, batch_size=batch_size, warmup=warmup, repeats=repeats)
    device = torch.device(device)
    memory_format = memory_format if memory_format is not None else default_memory_format(device, training=True)
    model = copy.deepcopy(model).to(device, memory_format=memory_format).train()
    recipe = TrainingDefaults()
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    images = _random_batch(batch_size, input_size, device, memory_format)
    masks = (images[:, :1] > 0).float()

    def step() -> None:
        with autocast(device, precision):
            logits = model(images)
        loss = bce_dice_loss(logits, masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    seconds = [time_call(device, step) for _ in range(repeats)]
    return _result(
        "training", seconds, batch_size=batch_size, input_size=input_size, device=device, precision=precision
    )


def measure_loader_speed(
    train_set: PolypTrainingSet,
    *,
    batch_size: int,
    workers: int,
    warmup: int = 2,
    repeats: int = 3,
    pin_memory: bool = False,
) -> SpeedResult:
    """Images/s the training data pipeline delivers without a model, iterated as a training epoch is.

    That is: decoded-cache reads, augmentation and collation in ``workers`` processes (``pin_memory`` as for
    batches bound for a GPU). The cache is filled first, as a run fills it before its first epoch. The first ``warmup``
    batches (worker start-up) are untimed; the remaining batches are cut into ``repeats`` consecutive chunks,
    each giving one rate. Compare ``fps`` with the training images/s: below it, the device waits for data.
    """
    _check_counts(batch_size=batch_size, workers=workers, warmup=warmup, repeats=repeats)
    train_set.fill_cache(train_set.uncached(), workers=workers)
    loader = make_loader(train_set, batch_size, shuffle=True, workers=workers, pin_memory=pin_memory)
    if len(loader) < warmup + repeats:
        raise MedicoError(
            f"data pipeline speed: {len(train_set)} images of {train_set.dataset.description} make {len(loader)} "
            f"batches of {batch_size}; "
            f"timing needs at least {warmup + repeats} (warm-up {warmup} + repeats {repeats})"
        )
    arrivals = [time.perf_counter()]  # when iteration started, then when each batch arrived
    for _ in loader:
        arrivals.append(time.perf_counter())
    timed = arrivals[warmup:]  # from the last untimed arrival on
    batches = len(timed) - 1
    bounds = [i * batches // repeats for i in range(repeats + 1)]
    seconds = [(timed[end] - timed[begin]) / (end - begin) for begin, end in zip(bounds, bounds[1:])]
    return _result(
        "data pipeline", seconds, batch_size=batch_size, input_size=train_set.size, device=torch.device("cpu"),
        precision="fp32", workers=workers,
    )


PIPELINE_WARMUP = 2
"""Batches the training-pipeline timing leaves untimed (loader workers start)."""


def measure_training_pipeline(
    dataset: Any, input_size: int, *, batch_size: int, device: torch.device, workers: int | None, repeats: int
) -> SpeedResult:
    """Images/s of the data pipeline a run on ``device`` would train from: every image of ``dataset`` at
    ``input_size``, augmented, with ``workers`` loader processes (None: as training picks them), as many timed
    chunks as the data allows up to ``repeats`` (see :func:`measure_loader_speed`)."""
    train_set = PolypTrainingSet(dataset, dataset.names, input_size, augment=True)
    chosen = default_workers(device) if workers is None else workers
    chunks = max(1, min(repeats, len(train_set) // batch_size - PIPELINE_WARMUP))
    return measure_loader_speed(
        train_set, batch_size=batch_size, workers=chosen, warmup=PIPELINE_WARMUP, repeats=chunks,
        pin_memory=device.type == "cuda",
    )


def _random_batch(
    batch_size: int, input_size: int, device: torch.device, memory_format: torch.memory_format
) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    batch = torch.rand(batch_size, 3, input_size, input_size, generator=generator) * 2 - 1
    return batch.to(device).contiguous(memory_format=memory_format)


def measure_end_to_end_speed(
    predictor: Predictor, image_paths: Sequence[Path], *, warmup: int = 2, repeats: int = 1
) -> SpeedResult:
    """Per-image FPS at batch 1 of the whole path: decode, resize, forward, resize back, threshold.

    The first ``warmup`` images (cycling through ``image_paths``) are processed untimed; then every image is
    timed ``repeats`` times over; ``fps`` is one over the median time per image.
    """
    paths = [Path(p) for p in image_paths]
    if not paths:
        raise MedicoError("end-to-end speed: no images given (expected at least one image file)")
    _check_counts(warmup=warmup, repeats=repeats)

    def predict(path: Path) -> None:
        predictor.masks([read_rgb(path)])  # masks come back to the CPU, so the GPU has finished

    for index in range(warmup):
        predict(paths[index % len(paths)])
    seconds = [time_call(predictor.device, lambda p=path: predict(p)) for _ in range(repeats) for path in paths]
    return _result(
        "end-to-end",
        seconds,
        batch_size=1,
        input_size=predictor.input_size,
        device=predictor.device,
        precision=predictor.precision,
    )


def count_flops(model: nn.Module, input_size: int) -> int:
    """Forward FLOPs for one ``(1, 3, S, S)`` image, counted by ``FlopCounterMode`` (multiply-add = 2 FLOPs).

    Only the operations torch's counter knows (convolutions, transposed convolutions, matmuls, attention) are
    counted; activations, normalisation and pooling are not, as in most published GFLOPs figures.
    """
    _check_counts(input_size=input_size)
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    try:
        with torch.inference_mode(), counter:
            model(torch.zeros(1, 3, input_size, input_size, device=device))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())
