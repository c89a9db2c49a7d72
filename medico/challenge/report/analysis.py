"""The numbers of the organiser's report: the final ranking with each team's mean mIoU and its bootstrap interval,
how stable the ranks are under bootstrap resampling of the private images, which teams are significantly better
than which, and how the ranking changes with the ranking method. Seeded: the same database and seed give the same
numbers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from medico.challenge.folder import Challenge
from medico.challenge.phase import Phase, closed_at, closing_time, phase_at
from medico.challenge.report.design import design
from medico.challenge.report.methods import METHODS, ranks_by_method
from medico.challenge.settings import ChallengeError, Settings
from medico.challenge.standings import final_ranking
from medico.leaderboard.rank_stability import RANK_RESAMPLES, kendall_taus
from medico.stats.pairwise import PairwiseTests, pairwise_wilcoxon
from medico.stats.per_image import CONFIDENCE, bootstrap_ci

__all__ = ["MAX_RESAMPLES", "Report", "TeamResult", "analyse"]

MAX_RESAMPLES = 100_000
"""The most resamples a report draws (100,000 take about a minute for 20 teams)."""


@dataclass(frozen=True)
class TeamResult:
    """One team in the report: its ranked submission (the team's n-th upload), final rank, mean private mIoU and Dice,
    the bootstrap interval of its mIoU, its median rank and rank interval over the resamples, the share of resamples
    that gave it each rank (1 to the number of teams), and its IoU on each private image."""

    team: str
    model: str
    submission: int | None
    rank: int
    miou: float
    dice: float
    miou_interval: tuple[float, float]
    median_rank: float
    rank_interval: tuple[int, int]
    rank_frequencies: list[float]
    per_image_iou: list[float]


@dataclass(frozen=True)
class Report:
    """The report's numbers. ``teams`` in final ranking order; ``taus``: Kendall's tau between the final ranking and
    each resample's (empty with a single team); ``tests``: the pairwise tests on per-image IoU, rows and columns in
    the teams' order; ``methods``: each team's rank under each of :data:`~medico.challenge.report.methods.METHODS`.
    ``as_of``: when the ranking stands (the close; the time of a preview)."""

    challenge: str
    preview: bool
    as_of: str
    design: dict[str, Any]
    seed: int
    resamples: int
    confidence: float
    images: list[str]
    teams: list[TeamResult]
    taus: np.ndarray
    tests: PairwiseTests
    methods: dict[str, list[int]]

    def kendall_summary(self) -> dict[str, float | None]:
        """Kendall's tau over the resamples: median, mean, 2.5th and 97.5th percentiles, smallest (None without
        any), and the share of resamples that rank every team as the final ranking does."""
        taus = self.taus[~np.isnan(self.taus)]
        if taus.size == 0:
            return {"median": None, "mean": None, "p2.5": None, "p97.5": None, "min": None, "identical": None}
        return {
            "median": float(np.median(taus)),
            "mean": float(taus.mean()),
            "p2.5": float(np.percentile(taus, 2.5)),
            "p97.5": float(np.percentile(taus, 97.5)),
            "min": float(taus.min()),
            "identical": float((taus == 1.0).mean()),
        }

    def moved_by_aggregation(self) -> list[str]:
        """The teams whose rank changes with the aggregation (every method but test-then-rank, whose shared ranks
        would count every team below a tie as moved)."""
        aggregations = [ranks for name, ranks in self.methods.items() if name != "test then rank"]
        return [team.team for team, ranks in zip(self.teams, zip(*aggregations)) if len(set(ranks)) > 1]

    def as_dict(self) -> dict[str, Any]:
        """Every number of the report as JSON-ready data (NaN, on the diagonals of the tests, as None)."""
        tests = self.tests
        return {
            "challenge": self.challenge,
            "preview": self.preview,
            "as_of": self.as_of,
            "design": self.design,
            "bootstrap": {"resamples": self.resamples, "seed": self.seed, "confidence": self.confidence,
                          "images": f"the {len(self.images)} private images, with replacement"},
            "teams": [
                {
                    "rank": team.rank,
                    "team": team.team,
                    "model": team.model,
                    "submission": team.submission,
                    "miou": team.miou,
                    "miou_interval": list(team.miou_interval),
                    "dice": team.dice,
                    "median_rank": team.median_rank,
                    "rank_interval": list(team.rank_interval),
                    "rank_frequencies": team.rank_frequencies,
                    "test_then_rank": self.methods["test then rank"][index],
                    "ranks_by_method": {name: ranks[index] for name, ranks in self.methods.items()},
                    "per_image_iou": team.per_image_iou,
                }
                for index, team in enumerate(self.teams)
            ],
            "kendall_tau": {**self.kendall_summary(), "values": _finite(self.taus.tolist())},
            "moved_by_aggregation": self.moved_by_aggregation(),
            "significance": {
                "test": "one-sided Wilcoxon signed-rank on per-image IoU, row team better than column team",
                "adjustment": "Holm, over every ordered pair",
                "alpha": tests.alpha,
                "teams": [team.team for team in self.teams],
                "p_values": _finite(tests.p_values.tolist()),
                "adjusted": _finite(tests.adjusted.tolist()),
                "significant": tests.significant.tolist(),
            },
            "methods": METHODS,
            "images": self.images,
        }


def _finite(values: Any) -> Any:
    """``values`` (nested lists of floats) with NaN as None, for JSON."""
    if isinstance(values, list):
        return [_finite(value) for value in values]
    return None if isinstance(values, float) and math.isnan(values) else values


def _not_closed(settings: Settings, phase: Phase) -> str:
    """Where a challenge that is not closed stands, for the refusal: ``opens at ...`` or ``is open (until ...)``."""
    if phase == "before" and settings.opens is not None:
        return f"opens at {settings.opens.isoformat()}"
    return "is open" + (f" until {settings.closes.isoformat()}" if settings.closes is not None else "")


def analyse(
    challenge: Challenge,
    now: datetime,
    *,
    seed: int | None = None,
    resamples: int = RANK_RESAMPLES,
    preview: bool = False,
) -> Report:
    """The report of ``challenge`` at ``now``: after close, or before it with ``preview`` (for the organiser's eyes:
    it reads private scores). The bootstrap draws ``resamples`` resamples of the private images, seeded by ``seed``
    (default: the challenge's seed, as the standings draw their rank intervals, so both agree).

    Raises:
        ChallengeError: the challenge is not closed and ``preview`` is not set, no team has a scored submission, or
            ``resamples`` or ``seed`` is out of range.
    """
    closed = closed_at(challenge)
    phase = phase_at(challenge.settings, closed, now)
    if phase != "closed" and not preview:
        raise ChallengeError(f"the challenge {_not_closed(challenge.settings, phase)}: the report ranks by the private "
                             "scores, which stay hidden until the close (medico challenge close); --preview builds it "
                             "now, for the organiser's eyes only")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or not 1 <= resamples <= MAX_RESAMPLES:
        raise ChallengeError(f"--resamples: expected a whole number from 1 to {MAX_RESAMPLES:,}, got {resamples!r}")
    seed = challenge.settings.seed if seed is None else seed
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ChallengeError(f"--seed: expected a whole number of at least 0, got {seed!r}")
    final = final_ranking(challenge)
    if not final.rows:
        raise ChallengeError(f"{challenge.folder}: no team has a scored submission: there is no ranking to report")
    iou, dice = final.scores.scores["iou"], final.scores.scores["dice"]
    stability = final.rank_stability(seed, resamples)
    frequencies, medians, intervals = stability.frequencies(), stability.medians(), stability.intervals()
    official = [int(row.rank) for row in final.rows]  # type: ignore[arg-type]
    tests = pairwise_wilcoxon(iou)
    teams = []
    for index, row in enumerate(final.rows):
        interval = bootstrap_ci(iou[index], resamples=resamples, seed=seed)  # the rank resamples' very draws
        teams.append(TeamResult(
            row.entry.team, row.entry.model, row.entry.run, official[index], float(row.entry.iou or 0.0),
            float(row.entry.dice or 0.0), (interval.low, interval.high), medians[index], intervals[index],
            frequencies[index].tolist(), iou[index].tolist(),
        ))
    moment = (closing_time(challenge.settings, closed) if phase == "closed" else None) or now
    return Report(
        challenge=challenge.settings.name,
        preview=phase != "closed",
        as_of=moment.isoformat(),
        design=design(challenge),
        seed=seed,
        resamples=resamples,
        confidence=CONFIDENCE,
        images=final.scores.images,
        teams=teams,
        taus=kendall_taus(official, stability.ranks) if len(teams) > 1 else np.empty(0),
        tests=tests,
        methods=ranks_by_method(iou, dice, official, tests.test_then_rank()),
    )
