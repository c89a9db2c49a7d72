"""Ensembles: the mean of several models' probabilities, each model with its own input size and preprocessing.

Members may differ in model and in input size: each predicts at its own size, its probabilities are resized
(bilinearly) to the largest member's size and averaged there, and the mean is resized to each image's own size and
thresholded once, as one model's would be. Members of one input size are averaged exactly as at full resolution,
since bilinear resizing is linear. Threshold and test-time augmentation are the ensemble's: every member has the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from medico.engine.contract import LogitRanges
from medico.engine.inference import MaskPredictor, Predictor
from medico.engine.preprocess import resize_probabilities
from medico.errors import MedicoError

__all__ = ["Ensemble"]


class Ensemble(MaskPredictor):
    """Several :class:`~medico.engine.inference.Predictor` as one: the mean of their probabilities.

    Raises:
        MedicoError: no members, or members with different thresholds or test-time augmentation.
    """

    def __init__(self, members: Sequence[Predictor]) -> None:
        if not members:
            raise MedicoError("ensemble: expected at least one model, got none")
        for setting in ("threshold", "tta"):
            values = {getattr(member, setting) for member in members}
            if len(values) > 1:
                raise MedicoError(f"ensemble: every member predicts with one {setting}, got {sorted(map(str, values))}")
        self.members = list(members)
        self.threshold = members[0].threshold
        self.tta = members[0].tta
        self.input_size = max(member.input_size for member in members)
        self.device = members[0].device
        self.precision = members[0].precision

    def small_probabilities(self, images: Sequence[np.ndarray], ranges: LogitRanges | None = None) -> np.ndarray:
        """The members' mean probabilities ``(B, S, S)`` at the largest member's input size ``S``; ``ranges`` records
        each image's lowest and highest logit over all members."""
        total = np.zeros((len(images), self.input_size, self.input_size), np.float32)
        low = np.full(len(images), np.inf)
        high = np.full(len(images), -np.inf)
        for member in self.members:
            watched = LogitRanges() if ranges is not None else None
            small = member.small_probabilities(images, watched)
            for index, probabilities in enumerate(small):
                total[index] += resize_probabilities(probabilities, self.input_size, self.input_size)
            if watched is not None:
                bounds = watched.read()
                low, high = np.minimum(low, bounds[:, 0]), np.maximum(high, bounds[:, 1])  # NaN stays NaN
        if ranges is not None:
            ranges.add_bounds(torch.from_numpy(np.stack([low, high], axis=1)))
        return total / len(self.members)
