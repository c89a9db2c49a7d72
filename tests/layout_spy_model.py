"""A one-off model plugin (``tests/layout_spy_model.py:layout_spy``) that records the memory layout of what it is
given, for the per-processor layout defaults (medico.engine.runtime.default_memory_format)."""

from __future__ import annotations

import torch
from torch import nn


def layout(tensor: torch.Tensor) -> str:
    """'NHWC' for a channels_last 4-d tensor that is not also plainly contiguous, else 'NCHW'."""
    nhwc = tensor.is_contiguous(memory_format=torch.channels_last) and not tensor.is_contiguous()
    return "NHWC" if nhwc else "NCHW"


class LayoutSpy(nn.Module):
    """One 3x3 convolution; ``seen`` collects (training?, batch layout, weight layout) for every batch of more than
    two images (the contract's two-image probe is left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 3, padding=1)
        self.seen: list[tuple[bool, str, str]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) > 2:
            self.seen.append((self.training, layout(x), layout(self.conv.weight)))
        return self.conv(x)


def layout_spy() -> nn.Module:
    """A model that remembers the layouts it computed in."""
    return LayoutSpy()
