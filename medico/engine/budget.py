"""A training time budget: durations as users write them, the clock, when to stop and the schedule's progress.

``--max-time 1h30m`` gives a run a budget of wall-clock time, validation and checkpoints included. The schedule
anneals the learning rate over the time the budget leaves for training (its *horizon*: the budget less the time
the last validation and checkpoints took), measured on the clock rather than counted in epochs, so that a slower
machine, a busy CPU or a smaller input size all end the schedule at the budget. Time rather than a count of epochs
measured once: the speed of a shared machine drifts, and a count fixed from the first epoch would end too early or
run over.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["MAX_SECONDS", "Clock", "TimeBudget", "cosine_lr", "format_duration", "parse_duration"]

Clock = Callable[[], float]
"""Seconds from an arbitrary origin that never go back (``time.monotonic``; tests pass a fake one)."""

MAX_SECONDS = 366 * 24 * 3600.0
"""The longest budget: a year, beyond any training run and far inside what a float counts exactly in seconds."""

_DURATION = re.compile(r"(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m)?(?:(?P<s>\d+(?:\.\d+)?)s)?")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str) -> float:
    """Seconds in ``text``: hours, minutes and seconds in that order (``1h30m``, ``90s``, ``2.5h``), or a bare number
    of seconds (``600``).

    Raises:
        ValueError: a one-line message saying what is expected and what was found.
    """
    written = text.strip().lower().replace(" ", "")
    try:
        return float(written)
    except ValueError:
        pass
    match = _DURATION.fullmatch(written)
    if not written or match is None:
        raise ValueError(f"must be a duration such as 30m, 90s, 1h30m or 2.5h (h, m, s in that order), got {text!r}")
    return sum(float(amount) * _UNITS[unit] for unit, amount in match.groupdict().items() if amount is not None)


def format_duration(seconds: float) -> str:
    """``seconds`` as a short duration: ``45s``, ``3m05s``, ``2h10m``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def cosine_lr(base: float, end: float, progress: float) -> float:
    """The learning rate a fraction ``progress`` (clipped to [0, 1]) into a cosine schedule from ``base`` to ``end``."""
    progress = min(max(progress, 0.0), 1.0)
    return end + (base - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class TimeBudget:
    """The time a run may take, the time it has taken (earlier sessions included) and the time it must keep.

    Attributes:
        seconds: the budget; None: no limit on time (then nothing here ever stops a run).
        clock: where time is read.
        spent: seconds used by earlier sessions of the run (``--resume`` carries them over).
        reserve: seconds kept for the validation and checkpoints that end an epoch: the last ones measured.
    """

    seconds: float | None
    clock: Clock = time.monotonic
    spent: float = 0.0
    reserve: float = 0.0
    _started: float | None = field(default=None, repr=False)

    def start(self) -> None:
        """Start counting this session's time (on top of ``spent``)."""
        self._started = self.clock()

    def elapsed(self) -> float:
        """Seconds used so far by the run, earlier sessions included."""
        return self.spent + (self.clock() - self._started if self._started is not None else 0.0)

    def progress(self, elapsed: float) -> float:
        """How far into the training horizon (budget less reserve) ``elapsed`` is, from 0 to 1; 0 without a budget."""
        if self.seconds is None:
            return 0.0
        return min(elapsed / max(self.seconds - self.reserve, 1e-9), 1.0)

    def exhausted(self, elapsed: float, step_seconds: float = 0.0) -> bool:
        """Whether another step of ``step_seconds`` and then the reserve would run past the budget, or none is left."""
        if self.seconds is None:
            return False
        kept = elapsed + self.reserve
        return kept >= self.seconds or kept + step_seconds > self.seconds

    def left(self, elapsed: float) -> float | None:
        """Seconds of the budget left after ``elapsed``; None without a budget."""
        return None if self.seconds is None else max(self.seconds - elapsed, 0.0)
