"""Scoring one received archive for a challenge: the scorer of ``medico score`` (:func:`score_masks`) over every test
image, then each part's mean over its own images (the same per-image counts, reduced per part)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from medico.challenge.partition import Part
from medico.challenge.queue import Outcome
from medico.engine.result import COUNT_NAMES, EvaluationResult
from medico.leaderboard.entry import SCORES
from medico.submission.scorer import Truth, score_masks
from medico.submission.validator import RULES, InvalidSubmissionError

__all__ = ["MAX_MESSAGES", "score_for_challenge"]

MAX_MESSAGES = 50
"""Validator findings kept for an invalid submission (the rest are counted)."""


def score_for_challenge(archive: Path, truth: Truth, partition: Mapping[str, Part]) -> Outcome:
    """Validate and score ``archive`` against ``truth`` (the masks of every partitioned image): each part's mean
    scores and every image's scores, or the validator's findings when the archive is invalid."""
    try:
        evaluation, _ = score_masks(archive, truth)
    except InvalidSubmissionError as error:
        problems = error.report.problems
        messages = [f"{RULES[p.rule]}: {p.entry}: {p.detail}" for p in problems[:MAX_MESSAGES]]
        if len(problems) > MAX_MESSAGES:
            messages.append(f"and {len(problems) - MAX_MESSAGES} more problems")
        return Outcome(messages=tuple(messages))
    frame = evaluation.per_image
    parts: dict[Part, dict[str, float]] = {}
    for part in sorted(set(partition.values())):
        rows = frame[frame["name"].map(partition) == part]
        counts = rows[list(COUNT_NAMES)].to_numpy()
        sizes = list(zip(rows["height"], rows["width"]))
        parts[part] = EvaluationResult.from_counts(list(rows["name"]), sizes, counts, evaluation.policy).summary
    images = {row["name"]: {name: float(row[name]) for name in SCORES} for row in frame.to_dict("records")}
    return Outcome(parts=parts, images=images)
