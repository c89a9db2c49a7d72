"""The source paper's loss: binary cross-entropy plus soft Dice, both on logits in a numerically stable form."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["bce_dice_loss", "soft_dice_loss"]


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Soft Dice loss on probabilities: per image ``1 - 2*sum(y*p) / (sum(y^2) + sum(p^2) + eps)``, then the mean.

    Sums run over each image's pixels (all dims but the batch); ``p = sigmoid(logits)``. Computed in float32.
    An image with an empty target contributes about 1 whatever the prediction (only BCE pushes it to zero).
    """
    p = torch.sigmoid(logits.float()).flatten(1)
    y = target.float().flatten(1)
    dice = 2 * (y * p).sum(1) / ((y * y).sum(1) + (p * p).sum(1) + eps)
    return (1 - dice).mean()


def bce_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The source paper's loss: binary cross-entropy (mean over pixels, stable logits form) + soft Dice.

    L2 regularisation is not in the loss: it is Adam's ``weight_decay``.
    """
    return F.binary_cross_entropy_with_logits(logits.float(), target.float()) + soft_dice_loss(logits, target)
