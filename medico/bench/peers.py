"""Speed against baselines, measured in one process: medico's defaults vs the plain eager fp32 loop vs peers.

Ratios are only meaningful between numbers taken on the same machine in the same process, so every contender
is timed here, one after the other, with the same input size, batch sizes and repeats. The plain baseline is
the same model in eager fp32 with the default (NCHW) layout; peers are other implementations of the same
architecture (MONAI's ``AttentionUnet``, an optional dependency: ``pip install medico[monai]``); runtimes run the
same model in another engine (ONNX Runtime or OpenVINO on its exported graph: ``pip install medico[onnx]``,
``medico[openvino]``), inference only, and their masks are compared with medico's on the end-to-end images (the least
per-image Dice: 1 is exact).
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medico.bench.speed import (
    SpeedResult,
    measure_end_to_end_speed,
    measure_model_speed,
    measure_training_speed,
    time_call,
)
from medico.data.io import read_rgb
from medico.engine.export import mask_agreement
from medico.engine.inference import Predictor
from medico.engine.runtime import default_memory_format
from medico.engine.runtimes import GRAPH_RUNTIMES, runtime_model
from medico.errors import MedicoError

__all__ = [
    "PEERS",
    "RUNTIME_PEERS",
    "TRAINING_STEP_FORWARDS",
    "ComparisonRow",
    "Contender",
    "RoofUse",
    "compare",
    "contenders",
    "matmul_peak_flops",
    "roof_use",
]


@dataclass(frozen=True)
class Contender:
    """A model and how it is run; ``baseline`` marks the rows that ratios are taken against.

    ``memory_format`` is the layout it predicts in and ``training_format`` the one it trains in (None: the same).
    """

    label: str
    model: nn.Module
    precision: str
    memory_format: torch.memory_format
    baseline: bool = False
    runtime: bool = False
    """The same model in another engine: inference only, its masks compared with the first row's."""
    training_format: torch.memory_format | None = None

    @property
    def layout(self) -> str:
        """'NHWC' (channels_last) or 'NCHW', and the training layout when it differs: 'NHWC, trains NCHW'."""
        training = self.training_format or self.memory_format
        shown = _LAYOUTS[self.memory_format]
        return shown if training == self.memory_format else f"{shown}, trains {_LAYOUTS[training]}"


_LAYOUTS = {torch.channels_last: "NHWC", torch.contiguous_format: "NCHW"}


@dataclass(frozen=True)
class ComparisonRow:
    """One contender's model FPS (batch 1), and its end-to-end FPS and training speed where asked."""

    contender: Contender
    inference: SpeedResult
    end_to_end: SpeedResult | None
    training: SpeedResult | None
    agreement: float | None = None
    """For a runtime: the least per-image mask Dice against the first row (medico's defaults) on the images."""

    def as_dict(self) -> dict[str, Any]:
        """The contender's setting and its measurements, JSON-ready."""
        speeds = {"inference": self.inference, "end_to_end": self.end_to_end, "training": self.training}
        return {
            "label": self.contender.label,
            "precision": self.contender.precision,
            "layout": self.contender.layout,
            "baseline": self.contender.baseline,
            "runtime": self.contender.runtime,
            "mask_dice_vs_defaults": self.agreement,
            **{name: None if result is None else result.as_dict() for name, result in speeds.items()},
        }


TRAINING_STEP_FORWARDS = 3
"""A training step costs about three forward passes: the forward, and the backward through activations and weights."""


@dataclass(frozen=True)
class RoofUse:
    """How much of this machine's measured matmul roof a contender's inference and training achieve (FLOP/s)."""

    precision: str
    roof: dict[str, float]
    achieved: dict[str, float]

    def share(self, kind: str) -> float:
        """``kind``'s achieved FLOP/s as a fraction of the roof at the contender's precision."""
        return self.achieved[kind] / self.roof[self.precision]


def roof_use(row: ComparisonRow, flops: int, device: torch.device) -> RoofUse:
    """Measure the matmul roof (fp32 and the contender's precision) and what ``row`` achieves of it, from its forward
    ``flops`` per image and its model FPS (and training images/s, when timed)."""
    precision = row.contender.precision
    roof = {name: matmul_peak_flops(device, name) for name in dict.fromkeys(["fp32", precision])}
    achieved = {"inference": flops * row.inference.fps}
    if row.training is not None:
        achieved["training"] = TRAINING_STEP_FORWARDS * flops * row.training.fps
    return RoofUse(precision, roof, achieved)


def _monai_attention_unet(init_features: int = 32) -> nn.Module:
    """MONAI's AttentionUnet with the same widths and depth as medico's (32 ... 512, four 2x downsamplings)."""
    try:
        from monai.networks.nets import AttentionUnet
    except ImportError as error:
        raise MedicoError(
            "--vs monai: MONAI is not installed; install it with `pip install 'medico[monai]'` (or `pip install monai`)"
        ) from error
    channels = tuple(init_features << level for level in range(5))
    return AttentionUnet(spatial_dims=2, in_channels=3, out_channels=1, channels=channels, strides=(2, 2, 2, 2))


PEERS: dict[str, Callable[[], nn.Module]] = {"monai": _monai_attention_unet}
"""Peer implementations of the Attention U-Net, by the name given to ``medico bench --vs``."""
RUNTIME_PEERS: tuple[str, ...] = GRAPH_RUNTIMES
"""Engines (:mod:`medico.engine.runtimes`) that ``medico bench --vs`` runs the same model in."""


def contenders(
    model: nn.Module, label: str, precision: str, peers: Sequence[str], input_size: int, device: torch.device
) -> list[Contender]:
    """medico's way of running ``model``, the same model as a plain eager fp32 loop, each peer (plain) and ``model``
    in each runtime asked for (its graph at ``input_size``).

    Peers are run the plain way only: that is how a user of that library runs it unless they tune it.
    """
    unknown = [name for name in peers if name not in PEERS and name not in RUNTIME_PEERS]
    if unknown:
        raise MedicoError(
            f"--vs: unknown peer {', '.join(unknown)}; known peers: {', '.join(PEERS)}; runtimes: "
            + ", ".join(RUNTIME_PEERS)
        )
    rows = [
        Contender(
            f"{label} · medico defaults", model, precision, default_memory_format(device),
            training_format=default_memory_format(device, training=True),
        ),
        Contender(f"{label} · plain eager fp32", model, "fp32", torch.contiguous_format, baseline=True),
    ]
    plain = torch.contiguous_format
    for name in dict.fromkeys(peers):
        if name in RUNTIME_PEERS:
            engine = runtime_model(model, input_size, name)
            rows.append(Contender(f"{label} · {name} fp32", engine, "fp32", plain, runtime=True))
        else:
            rows.append(
                Contender(f"{name} AttentionUnet · plain eager fp32", PEERS[name](), "fp32", plain, baseline=True)
            )
    return rows


def compare(
    rows: Sequence[Contender],
    input_size: int,
    *,
    device: torch.device,
    train_batch_size: int | None,
    warmup: int,
    repeats: int,
    image_paths: Sequence[Path] = (),
    progress: Callable[[str], None] | None = None,
) -> list[ComparisonRow]:
    """Time each contender's batch-1 inference, its end-to-end prediction of ``image_paths`` (when given) and,
    when ``train_batch_size`` is given, its training step."""
    results: list[ComparisonRow] = []
    reference: Predictor | None = None  # the first row's (medico's defaults), which runtimes' masks are compared with
    for row in rows:
        if progress is not None:
            progress(row.label)
        # Training first: its large activations are the most sensitive to what earlier measurements left in the
        # allocator, and a fresh heap gives each contender the same start. cuDNN autotuning (GPU only) is one of
        # medico's defaults, so baselines run without it.
        with torch.backends.cudnn.flags(enabled=True, benchmark=not row.baseline):
            training = None
            if train_batch_size is not None and not row.runtime:
                training = measure_training_speed(
                    row.model, input_size, device=device, precision=row.precision, batch_size=train_batch_size,
                    warmup=1, repeats=max(3, repeats // 2), memory_format=row.training_format or row.memory_format,
                )
            inference = measure_model_speed(
                row.model, input_size, device=device, precision=row.precision, batch_size=1,
                warmup=warmup, repeats=repeats, memory_format=row.memory_format,
            )
            end_to_end = agreement = None
            if image_paths:
                predictor = Predictor(
                    row.model, input_size, device, row.precision, memory_format=row.memory_format,
                    autotune=not row.baseline,
                )
                end_to_end = measure_end_to_end_speed(predictor, image_paths, warmup=min(warmup, len(image_paths)))
                if reference is None:
                    reference = predictor
                elif row.runtime:
                    agreement = float(mask_agreement(reference, predictor, [read_rgb(p) for p in image_paths]).min())
        results.append(ComparisonRow(row, inference, end_to_end, training, agreement))
    return results


def matmul_peak_flops(
    device: torch.device, precision: str, size: int = 2048, repeats: int = 5, enough: float = 0.1
) -> float:
    """The machine's compute roof as measured: FLOP/s of large square matmuls in ``precision`` (median).

    A ``side``-square matmul costs ``2 * side**3`` FLOPs (multiply-add = 2, as in
    :func:`medico.bench.speed.count_flops`). The side doubles from 256 up to ``size`` until one timed run takes
    ``enough`` seconds: large enough to reach the roof, yet a precision the hardware only emulates (bf16 on a CPU
    without it, as ``MEDICO_CPU_CLASS`` may ask) costs about a second rather than minutes.
    On a GPU one such matmul takes tens of microseconds, about what synchronising around it costs, so each
    timed run there chains 50 of them. fp32 means true fp32 (PyTorch leaves TF32 matmuls off by default).
    """
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    chained = 50 if device.type == "cuda" else 1
    side = min(256, size)
    while True:
        a, b = (torch.randn(side, side, device=device).to(dtype) for _ in range(2))
        products = functools.partial(_chained_products, a, b, chained)
        products()  # warm-up
        if side >= size or time_call(device, products) >= enough:
            break
        side = min(2 * side, size)
    seconds = [time_call(device, products) for _ in range(repeats)]
    return chained * 2 * side**3 / statistics.median(seconds)


def _chained_products(a: torch.Tensor, b: torch.Tensor, count: int) -> None:
    for _ in range(count):
        torch.mm(a, b)
