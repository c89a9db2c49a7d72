"""Attention U-Net: the brain-MRI U-Net with an additive attention gate on each of its four skips.

The model of the source paper (fine-tuning a brain-MRI U-Net with attention for polyps). Every U-Net key is
the same as in :mod:`medico.models.unet`, so the brain-MRI checkpoint fills all of them; only ``gate1`` ...
``gate4`` start fresh.
"""

from __future__ import annotations

import torch
from torch import nn

from medico.models.blocks import AttentionGate
from medico.models.unet import BRAIN_MRI, UNet
from medico.plugins import TrainingDefaults, register_model

__all__ = ["AttentionUNet", "attunet"]


class AttentionUNet(UNet):
    """U-Net whose skip connections pass through attention gates driven by the upsampled decoder feature."""

    def __init__(self, in_channels: int = 3, out_channels: int = 1, init_features: int = 32) -> None:
        super().__init__(in_channels=in_channels, out_channels=out_channels, init_features=init_features)
        f = init_features
        # gate<level> sees the skip of encoder<level> (channels f * 2**(level-1)) and the upsampled decoder
        # feature of the same width; the intermediate width is half of it, as in Oktay et al.
        widths = {level: f << (level - 1) for level in (1, 2, 3, 4)}
        self.gates = nn.ModuleDict(
            {str(level): AttentionGate(width, width, max(width // 2, 1)) for level, width in widths.items()}
        )

    def skip(self, level: int, encoded: torch.Tensor, upsampled: torch.Tensor) -> torch.Tensor:
        return self.gates[str(level)](encoded, upsampled)


@register_model(
    "attunet",
    description="Attention U-Net: brain-MRI U-Net with additive attention gates on the four skips (source paper)",
    defaults=TrainingDefaults(),
    pretrained={"brain-mri": BRAIN_MRI},
)
def attunet(in_channels: int = 3, out_channels: int = 1, init_features: int = 32) -> AttentionUNet:
    """Attention U-Net with the brain-MRI U-Net's key names plus gates, returning logits."""
    return AttentionUNet(in_channels=in_channels, out_channels=out_channels, init_features=init_features)
