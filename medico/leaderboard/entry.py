"""One leaderboard row: who, what, on which split, the scores (means and spreads), speed and provenance."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["SOURCES", "SPLITS", "TASKS", "Entry"]

TASKS = ("segmentation", "efficiency")
SPLITS = ("val", "test")
SOURCES = ("measured", "submission", "published")

Task = Literal["segmentation", "efficiency"]
Split = Literal["val", "test"]
Source = Literal["measured", "submission", "published"]


@dataclass(frozen=True)
class Entry:
    """A result as stored on the leaderboard.

    Scores are means over images in [0, 1] (None where a published source does not give them); ``*_std`` are
    standard deviations over images. ``sha256`` identifies what was scored (archive or checkpoint): the store
    keeps one entry per (sha256, task, split). ``fps_kind`` is ``"model"`` (forward only) or ``"end-to-end"``.
    ``id`` is the store's row id (None until stored, and for published rows read from ``reported.csv``).
    """

    team: str
    model: str
    task: Task = "segmentation"
    split: Split = "val"
    run: int | None = None
    dice: float | None = None
    iou: float | None = None
    precision: float | None = None
    recall: float | None = None
    f2: float | None = None
    accuracy: float | None = None
    dice_std: float | None = None
    iou_std: float | None = None
    precision_std: float | None = None
    recall_std: float | None = None
    f2_std: float | None = None
    accuracy_std: float | None = None
    fps: float | None = None
    fps_device: str | None = None
    fps_kind: str | None = None
    n_images: int | None = None
    dataset_fingerprint: str | None = None
    metric_policy: dict[str, Any] = field(default_factory=dict)
    source: Source = "measured"
    sha256: str | None = None
    created: str | None = None
    note: str = ""
    citation: str = ""
    id: int | None = None
