"""One leaderboard row: who, what, on which split, the scores (means and spreads), speed and provenance."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Protocol

from medico.engine.tta import TTA_MODES
from medico.leaderboard.errors import LeaderboardError
from medico.leaderboard.participant import MAX_TEAM_NAME, MAX_TEXT, check_run_number, check_team_name, plain_text
from medico.polyp_metrics import EM_MAX

__all__ = ["INTERVALS", "PAPER_SCORES", "SCORES", "SOURCES", "SPLITS", "TASKS", "Entry", "check_entry"]

TASKS = ("segmentation", "efficiency")
SPLITS = ("val", "test")
SOURCES = ("measured", "submission", "published")
SCORES = ("dice", "iou", "precision", "recall", "f2", "accuracy")
PAPER_SCORES = ("smeasure", "mean_em", "wfm", "mae", "hd95")
"""The measures polyp papers report that a row can hold (:mod:`medico.polyp_metrics`; None where not scored)."""
INTERVALS = ("iou", "dice")
"""The scores whose bootstrap interval an entry can hold (``iou_ci_low``, ``iou_ci_high``, ...)."""

Task = Literal["segmentation", "efficiency"]
Split = Literal["val", "test"]
Source = Literal["measured", "submission", "published"]


class Evaluated(Protocol):
    """What a row is built from (:class:`medico.engine.result.EvaluationResult`): the summary over images, the
    policy and the bootstrap summaries of :data:`INTERVALS` (each with ``ci_low`` and ``ci_high``)."""

    summary: dict[str, float]
    policy: dict[str, Any]

    @property
    def intervals(self) -> dict[str, Any]: ...


class SpeedMeasured(Protocol):
    """A model-speed measurement (:class:`medico.bench.speed.SpeedResult`)."""

    fps: float
    device: str
    kind: str
    precision: str


@dataclass(frozen=True)
class Entry:
    """A result as stored on the leaderboard.

    Scores are means over images in [0, 1] (None where a published source does not give them); ``*_std`` are
    standard deviations over images; ``*_ci_low``/``*_ci_high`` bound the 95% bootstrap interval of the mean over
    images (:mod:`medico.stats.per_image`). ``smeasure`` ... ``hd95`` are the means of :data:`PAPER_SCORES` where
    they were scored (``--paper-metrics``); HD95 in pixels, the others fractions. ``sha256`` identifies what was
    scored (archive or checkpoint): the store keeps one entry per (sha256, task, split). ``fps_kind`` is ``"model"``
    (forward only) or ``"end-to-end"``. ``tta`` is the test-time augmentation the masks were predicted with
    (:data:`medico.engine.tta.TTA_MODES`) and ``ensemble`` the number of models whose probabilities were averaged (1:
    a single model).
    ``id`` is the store's row id (None until stored, and for published rows read from ``reported.csv``).

    Every entry passes one gate for participant text when it is made (:mod:`medico.leaderboard.participant`): a new
    entry (no id yet) whose team name is not plain is refused; every text (team, model, note, dataset, citation...)
    has its control, format and bidi characters written as escapes and is cut to a cap. A row read back from the
    store keeps its id and is neutralised the same way, so a name an older medico let in still shows harmlessly.
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
    iou_ci_low: float | None = None
    iou_ci_high: float | None = None
    dice_ci_low: float | None = None
    dice_ci_high: float | None = None
    smeasure: float | None = None
    mean_em: float | None = None
    wfm: float | None = None
    mae: float | None = None
    hd95: float | None = None
    fps: float | None = None
    fps_device: str | None = None
    fps_kind: str | None = None
    fps_precision: str | None = None
    n_images: int | None = None
    dataset_fingerprint: str | None = None
    dataset: str = ""
    metric_policy: dict[str, Any] = field(default_factory=dict)
    source: Source = "measured"
    sha256: str | None = None
    created: str | None = None
    note: str = ""
    citation: str = ""
    tta: str = "none"
    ensemble: int = 1
    id: int | None = None

    @classmethod
    def from_evaluation(
        cls,
        evaluation: Evaluated,
        *,
        team: str,
        model: str,
        split: Split,
        source: Source,
        speed: SpeedMeasured | None = None,
        **provenance: Any,
    ) -> Entry:
        """The row of a scored evaluation: each score's mean and spread over images, the 95% bootstrap interval of
        mIoU and Dice, the metric policy, and the speed when one was measured. ``medico run`` (val) and
        ``medico score`` (test) both build their rows here; ``provenance`` holds the other fields (run, sha256,
        dataset, note...)."""
        summary = evaluation.summary
        bounds = {
            f"{name}_ci_{end}": getattr(interval, f"ci_{end}")
            for name, interval in evaluation.intervals.items()
            for end in ("low", "high")
        }
        measured = {} if speed is None else {
            "fps": speed.fps, "fps_device": speed.device, "fps_kind": speed.kind, "fps_precision": speed.precision
        }
        return cls(
            team=team,
            model=model,
            task="segmentation",
            split=split,
            **{key: summary[key] for name in SCORES for key in (name, f"{name}_std")},
            **bounds,
            **{name: summary[name] for name in PAPER_SCORES if name in summary},
            **measured,
            n_images=int(summary["n_images"]),
            metric_policy=evaluation.policy,
            source=source,
            **provenance,
        )

    def __post_init__(self) -> None:
        if self.id is None:
            check_team_name(self.team, "team")
        for name in _FIELDS:
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, plain_text(value, MAX_TEAM_NAME if name == "team" else MAX_TEXT))


_FIELDS = tuple(f.name for f in fields(Entry))


def check_entry(entry: Entry) -> None:
    """Refuse an entry the leaderboard could not rank honestly or store: unknown task/split/source, scores outside
    [0, 1], a run number outside 1..2**63-1."""
    choices = (("task", entry.task, TASKS), ("split", entry.split, SPLITS), ("source", entry.source, SOURCES))
    for name, value, allowed in choices:
        if value not in allowed:
            raise LeaderboardError(f"entry {name}: expected one of {', '.join(allowed)}, got {value!r}")
    for name in SCORES:
        value = getattr(entry, name)
        if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise LeaderboardError(
                f"entry {name}: expected a fraction in [0, 1], got {value!r} (scores are not percentages)"
            )
    for name in INTERVALS:
        low, high = getattr(entry, f"{name}_ci_low"), getattr(entry, f"{name}_ci_high")
        if (low is None) != (high is None):
            raise LeaderboardError(
                f"entry {name}_ci_low/{name}_ci_high: expected both or neither, got {low!r} and {high!r}"
            )
        if low is not None and not (0.0 <= low <= high <= 1.0):
            raise LeaderboardError(
                f"entry {name}_ci_low/{name}_ci_high: expected 0 <= low <= high <= 1, got [{low!r}, {high!r}]"
            )
    for name in PAPER_SCORES:
        value = getattr(entry, name)
        high = math.inf if name == "hd95" else EM_MAX if name == "mean_em" else 1.0
        if value is not None and not (math.isfinite(value) and 0.0 <= value <= high):
            expected = "a distance of 0 pixels or more" if name == "hd95" else f"a value in [0, {high:g}]"
            raise LeaderboardError(f"entry {name}: expected {expected}, got {value!r}")
    if entry.tta not in TTA_MODES:
        raise LeaderboardError(f"entry tta: expected one of {', '.join(TTA_MODES)}, got {entry.tta!r}")
    if isinstance(entry.ensemble, bool) or not isinstance(entry.ensemble, int) or not 1 <= entry.ensemble <= 2**31:
        raise LeaderboardError(f"entry ensemble: expected a number of models from 1, got {entry.ensemble!r}")
    if entry.run is not None:
        check_run_number(entry.run, "entry run")
    if entry.fps is not None and not (math.isfinite(entry.fps) and entry.fps > 0):
        raise LeaderboardError(f"entry fps: expected a positive number, got {entry.fps!r}")
