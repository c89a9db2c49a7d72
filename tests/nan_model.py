"""A one-off model plugin (``tests/nan_model.py:nan_model``) whose logits are NaN, for the training NaN guard."""

from __future__ import annotations

import torch
from torch import nn


class NaNModel(nn.Module):
    """Multiplies the red channel by a NaN parameter once given more than two images: the contract's probe (two
    images, medico.engine.contract) passes, so that the first training batch is what meets the NaN."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float("nan")))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1] * self.scale if len(x) > 2 else x[:, :1]


def nan_model() -> nn.Module:
    """A model whose logits are NaN everywhere for a training batch."""
    return NaNModel()
