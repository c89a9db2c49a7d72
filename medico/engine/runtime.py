"""Where and how tensors are computed: the device, its default precision, memory layout and allocator.

The speed choices that are safe are defaults: bf16 autocast where the hardware computes bf16 natively (recent
GPUs; CPUs with AVX512-BF16 or AMX) for training, benchmarks and task 2, channels_last weights and activations where
they were measured faster (:func:`default_memory_format`) and cuDNN autotuning; the allocator is tuned by
:mod:`medico.engine.allocator`. Scores and written masks are made in fp32 (:data:`MASK_PRECISION`) on every
machine. The CPU's class (:func:`cpu_class`) can be forced with ``MEDICO_CPU_CLASS``.
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from medico.errors import MedicoError

__all__ = [
    "CPU_CLASSES",
    "MASK_PRECISION",
    "PRECISIONS",
    "PRECISION_CHOICES",
    "CpuClass",
    "Precision",
    "autocast",
    "autotune_convolutions",
    "compile_for_inference",
    "cpu_class",
    "default_memory_format",
    "default_precision",
    "resolve_precision",
    "device_name",
    "resolve_device",
]

_CHANNELS_LAST_CPUS = {"inference": frozenset({"AVX512", "AVX2"}), "training": frozenset({"AVX512"})}
"""CPU classes (``torch.backends.cpu.get_cpu_capability()``) where channels_last was measured faster than NCHW.

attunet at 256x256, fp32, one ``medico bench --vs monai --train-batch-size 8`` process:
AVX-512 (Xeon, VNNI): inference 1.37x, training 1.39x; AVX2 (an AVX2-only Xeon, and the same Xeon with
ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2): inference 1.25x and 1.20x, training 0.87x and 0.76x.
Other classes (ARM, no AVX2) were never measured: they keep PyTorch's own NCHW."""

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
PRECISION_CHOICES: tuple[str, ...] = ("auto", *PRECISIONS)
"""What ``--precision`` takes: ``auto`` (:func:`default_precision`) or one precision."""
MASK_PRECISION: Precision = "fp32"
"""The precision of every score and every written mask unless asked otherwise: ``evaluate``, ``predict``, ``show``,
task 1 ``submit`` and the final evaluation of ``run``. fp32 masks are the same on every CPU class up to fp32's last
bits (the avx512-bf16 and avx2 classes wrote byte-identical archives; an NCHW class's Dice differed by 2e-5) and equal
an exported graph's, so a validation score describes the masks a submission holds wherever either was made; bf16 masks
differ from them in a few hundred pixels per Kvasir-SEG frame. Training, its per-epoch validation, ``bench`` and the
task 2 container run at :func:`default_precision`, which is about speed."""


@dataclass(frozen=True)
class CpuClass:
    """What medico's defaults read of a CPU: its kernel class (``torch.backends.cpu.get_cpu_capability()``: AVX512,
    AVX2, DEFAULT...) and whether it computes bf16 in hardware (AVX512-BF16 or AMX)."""

    capability: str
    native_bf16: bool


CPU_CLASSES: dict[str, CpuClass] = {
    "avx512-bf16": CpuClass("AVX512", native_bf16=True),  # AMX (Xeon Sapphire Rapids on) or AVX512-BF16 (EPYC Zen 4)
    "avx512": CpuClass("AVX512", native_bf16=False),  # AVX-512 with VNNI but no bf16 (Xeon Cascade/Ice Lake)
    "avx2": CpuClass("AVX2", native_bf16=False),  # AVX2 only (older EPYC, desktop CPUs)
    "default": CpuClass("DEFAULT", native_bf16=False),  # none of these: PyTorch's own defaults
}
"""The CPU classes ``MEDICO_CPU_CLASS`` may name: the machines medico's defaults were measured on."""
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str | None = None) -> torch.device:
    """``name`` ('cpu', 'cuda', 'cuda:1'...) or, when None or 'auto', CUDA when available else CPU."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise MedicoError(f"--device: {name!r} is not a device (expected auto, cpu, cuda or cuda:N)") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MedicoError(f"--device {name}: CUDA is not available on this machine (use cpu or auto)")
    return device


def device_name(device: torch.device) -> str:
    """A human name for reports: the GPU's name, or the CPU with its thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    forced = os.environ.get("MEDICO_CPU_CLASS")
    return f"CPU {_cpu_model()} ({torch.get_num_threads()} threads{f', as class {forced}' if forced else ''})"


def _cpu_model() -> str:
    """The processor's marketing name from /proc/cpuinfo where there is one, else the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1]
                # "Intel(R) Xeon(R) Processor" -> "Intel Xeon": shorter in tables, as recognisable
                for noise in ("(R)", "(TM)", "(tm)", " Processor", " CPU"):
                    name = name.replace(noise, "")
                return " ".join(name.split())
    except OSError:
        pass
    return platform.processor() or platform.machine()


def default_memory_format(device: torch.device, *, training: bool = False) -> torch.memory_format:
    """The layout of weights and batches on ``device``: channels_last where it was measured faster, else NCHW.

    channels_last on GPUs (cuDNN's NHWC kernels) and on the CPU classes of :data:`_CHANNELS_LAST_CPUS`: oneDNN's
    NHWC backward is slower than NCHW on AVX2, so training there keeps NCHW while inference does not.
    """
    if device.type == "cuda":
        return torch.channels_last
    classes = _CHANNELS_LAST_CPUS["training" if training else "inference"]
    return torch.channels_last if cpu_class().capability in classes else torch.contiguous_format


def cpu_class() -> CpuClass:
    """This CPU's class, or the one of :data:`CPU_CLASSES` that ``MEDICO_CPU_CLASS`` names: the tests take every
    class's path on any machine that way, and anyone can reproduce another class's defaults (bf16 forced on a CPU
    without it is emulated: the same masks, slowly).

    Raises:
        MedicoError: ``MEDICO_CPU_CLASS`` names no class.
    """
    forced = os.environ.get("MEDICO_CPU_CLASS")
    if forced:
        if forced not in CPU_CLASSES:
            raise MedicoError(f"MEDICO_CPU_CLASS={forced!r}: expected one of {', '.join(CPU_CLASSES)}")
        return CPU_CLASSES[forced]
    return CpuClass(torch.backends.cpu.get_cpu_capability(), _hardware_bf16())


def _hardware_bf16() -> bool:
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # torch.cpu's capability probes
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def default_precision(device: torch.device) -> Precision:
    """Mixed precision where it is fast: bf16 on GPUs and CPUs that compute it natively (only there is it faster than
    fp32), fp16 on older GPUs, fp32 elsewhere. For speed (training, benchmarks, task 2); masks: :data:`MASK_PRECISION`.
    """
    if device.type == "cuda":
        # Compute capability 8 (Ampere) brought bf16 tensor cores; torch.cuda.is_bf16_supported() also says yes
        # to older GPUs that only emulate it, where cuDNN has no bf16 convolutions.
        return "bf16" if torch.cuda.get_device_capability(device)[0] >= 8 else "fp16"
    return "bf16" if cpu_class().native_bf16 else "fp32"


def resolve_precision(device: torch.device, requested: str | None = "auto") -> Precision:
    """The precision to run at on ``device``: ``requested``, or the device's default for None and ``auto``.

    Raises:
        MedicoError: ``requested`` is not one of :data:`PRECISION_CHOICES`.
    """
    if requested in (None, "auto"):
        return default_precision(device)
    if requested not in PRECISIONS:
        raise MedicoError(f"--precision: expected one of {', '.join(PRECISION_CHOICES)}, got {requested!r}")
    return requested  # type: ignore[return-value]


def compile_for_inference(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``torch.compile`` with inductor's freezing (weights folded in as constants), and CUDA graphs on a GPU.

    About 1.7x model FPS for attunet at 256x256 in bf16 on a 2-core AMX CPU (14 ms saved per image), after 10-20 s
    of compiling on the first call: it pays back after roughly a thousand images there (not the 160 test
    images), so it is an option, for benchmarks and long prediction jobs. On a GPU
    the compiled graph is also captured as a CUDA graph (mode ``reduce-overhead``): at batch 1 a U-Net's
    kernels are too small to hide the cost of launching them one by one. A graph's outputs are overwritten by
    its next call, so use each result before the next. Frozen weights must not change afterwards: inference
    only. Move the model to ``device`` and its layout before this.
    """
    import torch._inductor.config as inductor_config

    # The global switch, not torch.compile(options=...): through options the weights were not frozen (37.8 FPS
    # instead of 53.0 here). Freezing applies only to graphs compiled without autograd, i.e. to inference.
    inductor_config.freezing = True
    return torch.compile(model.eval(), mode="reduce-overhead" if device.type == "cuda" else None)


def autotune_convolutions() -> None:
    """Let cuDNN time its convolution algorithms on first use of each shape and keep the fastest (GPU only).

    medico's inputs have one fixed size, so the search is paid once. Process-wide: the Trainer and each
    Predictor on a GPU call this; it changes nothing on a CPU.
    """
    torch.backends.cudnn.benchmark = True


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """``torch.autocast`` for ``precision`` on ``device``; fp32 runs without autocast."""
    if precision not in PRECISIONS:
        raise MedicoError(f"--precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=_DTYPES[precision]):
        yield
