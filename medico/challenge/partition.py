"""The public/private partition of the test images: which images the public leaderboard is scored on.

Drawn once by ``medico challenge init`` from a seed and recorded in the challenge's database; the same names, fraction
and seed always draw the same partition.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Literal

from medico.challenge.settings import ChallengeError

__all__ = ["PARTS", "Part", "draw_partition"]

Part = Literal["public", "private"]
PARTS: tuple[Part, ...] = ("public", "private")


def draw_partition(names: Iterable[str], fraction: float, seed: int) -> dict[str, Part]:
    """``{name: part}``: ``round(fraction * n)`` of the ``n`` names public (at least one, and at least one private),
    drawn by ``seed`` from the sorted names.

    Example:
        >>> sorted(draw_partition(["a", "b", "c", "d"], 0.5, seed=1).values())
        ['private', 'private', 'public', 'public']
    """
    ordered = sorted(set(names))
    if len(ordered) < 2:
        raise ChallengeError(f"--images: a public and a private part need at least 2 test images, found {len(ordered)}")
    count = min(max(round(fraction * len(ordered)), 1), len(ordered) - 1)
    public = set(random.Random(seed).sample(ordered, count))
    return {name: "public" if name in public else "private" for name in ordered}
