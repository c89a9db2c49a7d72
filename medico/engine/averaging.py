"""Weight averaging: an exponential moving average (EMA) of a model's weights, the model that is validated and saved.

The average follows the weights after every optimiser step, BatchNorm's running statistics included (averaged like
the weights, as timm's ModelEma does; the step counter is copied), so the averaged model is complete and consistent
on its own. Its decay warms up as TensorFlow's ``ExponentialMovingAverage(num_updates=...)``: after ``n`` updates it
is ``min(decay, (1 + n) / (10 + n))``, so the average forgets the random initial weights within the first steps and
averages over roughly the last tenth of a short run, up to ``1 / (1 - decay)`` steps of a long one. A fixed decay
of 0.999 would still hold 60% of the initial weights after 500 steps, a 3-minute run at 64 px on a CPU.

Written here rather than with ``torch.optim.swa_utils.AveragedModel``: its EMA function takes a fixed decay, and its
update reads the step count back from the device at every step.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["AVERAGES", "DEFAULT_EMA_DECAY", "WeightAverage"]

AVERAGES = ("none", "ema")
"""The weight averages a run may keep: none, or an exponential moving average."""

DEFAULT_EMA_DECAY = 0.999
"""The EMA's decay once warmed up: an average over about the last thousand steps (18 epochs of Kvasir-SEG's 880
training images at batch 16)."""


class WeightAverage:
    """An exponential moving average of ``model``'s weights and buffers, held in a copy of the model (``module``)."""

    def __init__(self, model: nn.Module, decay: float = DEFAULT_EMA_DECAY) -> None:
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.updates = 0

    def current_decay(self) -> float:
        """The decay the next update uses (warmed up over the first updates)."""
        n = self.updates + 1
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current weights and buffers (after an optimiser step)."""
        weight = 1.0 - self.current_decay()
        averaged = [*self.module.parameters(), *self.module.buffers()]
        current = [*model.parameters(), *model.buffers()]
        floats = [(a, c) for a, c in zip(averaged, current, strict=True) if a.is_floating_point()]
        counts = [(a, c) for a, c in zip(averaged, current, strict=True) if not a.is_floating_point()]
        if floats:
            torch._foreach_lerp_([a for a, _ in floats], [c.detach() for _, c in floats], weight)
        for a, c in counts:  # BatchNorm's num_batches_tracked: a count, copied
            a.copy_(c)
        self.updates += 1
