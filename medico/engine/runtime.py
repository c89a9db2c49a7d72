"""Where and how tensors are computed: the device, its default precision, memory layout and allocator.

The speed choices that are safe are defaults: bf16 autocast where the hardware computes bf16 natively (recent
GPUs; CPUs with AVX512-BF16 or AMX), channels_last weights and activations where they were measured faster
(:func:`default_memory_format`) and cuDNN autotuning; the allocator is tuned by :mod:`medico.engine.allocator`.
fp32 stays one ``--precision fp32`` away.
"""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import torch

from medico.errors import MedicoError

__all__ = [
    "PRECISIONS",
    "PRECISION_CHOICES",
    "Precision",
    "autocast",
    "autotune_convolutions",
    "compile_for_inference",
    "cpu_has_native_bf16",
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
    return f"CPU {_cpu_model()} ({torch.get_num_threads()} threads)"


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
    return torch.channels_last if torch.backends.cpu.get_cpu_capability() in classes else torch.contiguous_format


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX): only then is bf16 faster than fp32."""
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # torch.cpu's capability probes
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def default_precision(device: torch.device) -> Precision:
    """Mixed precision where it is safe and fast: bf16 on GPUs and CPUs that compute it natively, fp16 on older
    GPUs, fp32 elsewhere."""
    if device.type == "cuda":
        # Compute capability 8 (Ampere) brought bf16 tensor cores; torch.cuda.is_bf16_supported() also says yes
        # to older GPUs that only emulate it, where cuDNN has no bf16 convolutions.
        return "bf16" if torch.cuda.get_device_capability(device)[0] >= 8 else "fp16"
    return "bf16" if cpu_has_native_bf16() else "fp32"


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
