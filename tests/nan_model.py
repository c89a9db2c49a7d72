"""A one-off model plugin (``tests/nan_model.py:nan_model``) whose logits are NaN, for the training NaN guard."""

from __future__ import annotations

import torch
from torch import nn


class NaNModel(nn.Module):
    """Multiplies the red channel by a NaN parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float("nan")))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1] * self.scale


def nan_model() -> nn.Module:
    """A model whose logits are NaN everywhere."""
    return NaNModel()
