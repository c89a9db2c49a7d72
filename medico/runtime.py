"""Where and how tensors are computed: device choice and the autocast precision that goes with it."""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import torch

from medico.errors import MedicoError

__all__ = ["PRECISIONS", "Precision", "autocast", "default_precision", "device_name", "resolve_device"]

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
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
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def default_precision(device: torch.device) -> Precision:
    """Mixed precision where it is safe and fast: bf16 on GPUs that support it, fp16 on older GPUs, fp32 on CPU."""
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


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
