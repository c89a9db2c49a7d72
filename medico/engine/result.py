"""An evaluation's result: per-image confusion counts and scores, their summary and the metric policy.

Built from counts alone (:meth:`EvaluationResult.from_counts`), so that ``medico evaluate`` and organiser scoring
(``medico score``, the challenge's worker) share it; it needs numpy and pandas, never torch.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from medico.files import write_atomic
from medico.leaderboard.entry import INTERVALS
from medico.metrics import METRIC_POLICY, reduce_scores, scores_from_counts
from medico.polyp_metrics import PAPER_METRICS, PAPER_POLICY
from medico.runs.folder import METRICS, PER_IMAGE
from medico.stats.per_image import ScoreSummary, describe

if TYPE_CHECKING:
    from medico.metrics import Array

__all__ = ["COUNT_NAMES", "EvaluationResult"]

COUNT_NAMES = ("tp", "fp", "fn", "tn")


@dataclass(frozen=True)
class EvaluationResult:
    """Per-image scores, their summary (mean and population std over images) and the metric policy used.

    ``per_image`` columns: name, height, width, tp, fp, fn, tn, dice, iou, precision, recall, f2, accuracy, and the
    papers' measures (:data:`medico.polyp_metrics.PAPER_METRICS`) where they were asked for.
    ``summary`` keys: each metric (mean), ``<metric>_std`` and ``n_images``. ``logit_ranges``: ``(N, 2)`` lowest
    and highest logit per image, where the model's logits were watched (:class:`medico.engine.contract.LogitRanges`).
    """

    per_image: pd.DataFrame
    summary: dict[str, float]
    policy: dict[str, Any]
    logit_ranges: np.ndarray | None = field(default=None, compare=False, repr=False)

    @functools.cached_property
    def intervals(self) -> dict[str, ScoreSummary]:
        """Mean, std and 95% bootstrap interval over images of each score the leaderboard shows an interval for."""
        return {name: describe(self.per_image[name].to_numpy()) for name in INTERVALS}

    @classmethod
    def from_counts(
        cls,
        names: Sequence[str],
        sizes: Sequence[tuple[int, int]],
        counts: Array,
        policy: dict[str, Any] | None = None,
        logit_ranges: np.ndarray | None = None,
        paper: Sequence[dict[str, float]] | None = None,
    ) -> EvaluationResult:
        """Build the result from per-image ``(height, width)`` and ``(N, 4)`` confusion counts (an array or a CPU
        tensor), and the papers' measures of each image (:func:`medico.polyp_metrics.paper_scores`) when they were
        computed."""
        counts = np.asarray(counts, dtype=np.int64)
        scores = scores_from_counts(counts)
        policy = dict(policy or METRIC_POLICY)
        if paper is not None:
            scores |= {name: np.array([one[name] for one in paper], dtype=np.float64) for name in PAPER_METRICS}
            policy.setdefault("paper_measures", PAPER_POLICY)
        frame = pd.DataFrame({"name": list(names)})
        frame["height"] = [h for h, _ in sizes]
        frame["width"] = [w for _, w in sizes]
        for column, values in zip(COUNT_NAMES, counts.T):
            frame[column] = values
        for metric, values in scores.items():
            frame[metric] = values
        summary: dict[str, float] = reduce_scores(scores, "mean_std")
        summary["n_images"] = len(frame)
        return cls(per_image=frame, summary=summary, policy=policy, logit_ranges=logit_ranges)

    def write(
        self, folder: Path, data: dict[str, Any] | None = None, prediction: dict[str, Any] | None = None
    ) -> None:
        """Write ``per_image.csv`` and ``metrics.json`` (summary, policy and, when given, what ``data`` the images
        came from and how they were predicted: :func:`medico.engine.evaluation.prediction_record`) into ``folder``,
        each atomically. Where: :func:`medico.runs.folder.evaluation_folder`."""
        folder = Path(folder)
        write_atomic(folder / PER_IMAGE, self.per_image.to_csv(index=False), replace=True)
        given = {"data": data, "prediction": prediction}
        saved = {"summary": self.summary, "policy": self.policy} | {k: v for k, v in given.items() if v is not None}
        write_atomic(folder / METRICS, json.dumps(saved, indent=2) + "\n", replace=True)
