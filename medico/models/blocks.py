"""Building blocks shared by the U-Net family: the two-conv block, padding to the network's stride, the gate."""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AttentionGate", "conv_block", "pad_to_multiple"]


def conv_block(in_channels: int, features: int, name: str) -> nn.Sequential:
    """Two (3x3 conv without bias, BatchNorm, ReLU), with the brain-MRI U-Net's key names (``enc1conv1`` ...)."""
    return nn.Sequential(
        OrderedDict(
            [
                (f"{name}conv1", nn.Conv2d(in_channels, features, kernel_size=3, padding=1, bias=False)),
                (f"{name}norm1", nn.BatchNorm2d(features)),
                (f"{name}relu1", nn.ReLU(inplace=True)),
                (f"{name}conv2", nn.Conv2d(features, features, kernel_size=3, padding=1, bias=False)),
                (f"{name}norm2", nn.BatchNorm2d(features)),
                (f"{name}relu2", nn.ReLU(inplace=True)),
            ]
        )
    )


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad height and width at the bottom/right (replicating the border) up to a multiple of ``multiple``."""
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay et al. 2018): weights a skip connection by a decoder gating signal.

    ``alpha = sigmoid(psi(relu(W_x skip + W_g gate)))`` per pixel, output ``skip * alpha``. The gating signal is
    the upsampled decoder feature, already at the skip's resolution, so no resampling is needed.
    """

    def __init__(self, skip_channels: int, gate_channels: int, inter_channels: int) -> None:
        super().__init__()
        self.skip_proj = nn.Conv2d(skip_channels, inter_channels, kernel_size=1, bias=False)
        self.gate_proj = nn.Conv2d(gate_channels, inter_channels, kernel_size=1, bias=True)
        self.psi = nn.Conv2d(inter_channels, 1, kernel_size=1, bias=True)

    def attention(self, skip: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """The attention map ``(B, 1, H, W)`` in (0, 1)."""
        return torch.sigmoid(self.psi(F.relu(self.skip_proj(skip) + self.gate_proj(gate))))

    def forward(self, skip: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        return skip * self.attention(skip, gate)
