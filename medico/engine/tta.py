"""Test-time augmentation: the mean of a model's probabilities over flipped and rotated copies of a batch.

``none`` is the batch as it is; ``flip`` adds its horizontal and vertical mirror images (3 forward passes);
``flip+rot`` is the 8 symmetries of the square (dihedral group D4: rotations by 0, 90, 180 and 270 degrees, each also
mirrored; 8 forward passes). Each copy's logits are turned back (the inverse transform) before their sigmoids are
averaged, so every probability map lies on the input's own grid. Rotations by 90 degrees swap height and width: a
model's input is square (:func:`medico.engine.preprocess.to_tensor`), and any fully convolutional model takes both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from medico.errors import MedicoError

if TYPE_CHECKING:  # tensors are only handled through their methods: the leaderboard imports TTA_MODES without torch
    import torch

__all__ = ["TTA_MODES", "Transform", "check_tta", "mean_probabilities", "transforms"]

TTA_MODES = ("none", "flip", "flip+rot")
"""``--tta``: the batch alone, with its two mirror images, or with all 8 symmetries of the square."""


@dataclass(frozen=True)
class Transform:
    """Mirror left-right (``flip``), then rotate by ``turns`` quarter turns counter-clockwise, over the last two
    dimensions of a ``(..., H, W)`` tensor; :meth:`undo` is its inverse."""

    turns: int = 0
    flip: bool = False
    vertical: bool = False

    def apply(self, batch: torch.Tensor) -> torch.Tensor:
        """The transformed batch (a new tensor, or ``batch`` itself for the identity)."""
        if self.flip:
            batch = batch.flip(-2 if self.vertical else -1)
        return batch.rot90(self.turns, (-2, -1)) if self.turns else batch

    def undo(self, batch: torch.Tensor) -> torch.Tensor:
        """``batch`` transformed back: the inverse rotation, then the same mirror (its own inverse)."""
        if self.turns:
            batch = batch.rot90(-self.turns, (-2, -1))
        return batch.flip(-2 if self.vertical else -1) if self.flip else batch


_TRANSFORMS = {
    "none": (Transform(),),
    "flip": (Transform(), Transform(flip=True), Transform(flip=True, vertical=True)),
    "flip+rot": tuple(Transform(turns, flip) for flip in (False, True) for turns in range(4)),
}


def check_tta(mode: str) -> str:
    """``mode`` when it is one of :data:`TTA_MODES`; otherwise an error naming ``--tta`` and the choices."""
    if mode not in _TRANSFORMS:
        raise MedicoError(f"--tta: expected one of {', '.join(TTA_MODES)}, got {mode!r}")
    return mode


def transforms(mode: str) -> tuple[Transform, ...]:
    """The transforms whose predictions ``mode`` averages (the identity first)."""
    return _TRANSFORMS[check_tta(mode)]


def mean_probabilities(
    logits: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor, mode: str
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The mean of ``sigmoid(logits(t(batch)))`` turned back by each transform ``t`` of ``mode``.

    Args:
        logits: the model: a batch ``(B, C, H, W)`` to logits ``(B, 1, H, W)``.
        batch: the images, on any device, in any dtype ``logits`` takes.
        mode: one of :data:`TTA_MODES`.

    Returns:
        The mean probabilities ``(B, 1, H, W)``, and each transform's logits ``(B, 1, H, W)``, turned back (for
        watching their ranges: :class:`medico.engine.contract.LogitRanges`).
    """
    seen = [t.undo(logits(t.apply(batch))) for t in transforms(mode)]
    total = seen[0].sigmoid()
    for each in seen[1:]:
        total = total.add_(each.sigmoid())
    return total.div_(len(seen)), seen
