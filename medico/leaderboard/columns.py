"""The columns people read on the leaderboard (terminal, markdown, html): header, value, text, whether higher is
better, and what each means (:data:`MEANINGS`, the legend every view shows). Scores are shown as fractions with four
decimals (0.8988), FPS with one decimal, dates as YYYY-MM-DD; with intervals, mIoU and Dice read
``0.812 [0.78, 0.84]`` (mean and 95% bootstrap interval over images). The measures polyp papers report (S-measure,
mean E-measure, weighted F-measure, MAE, HD95 in pixels) are shown on request."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from medico.leaderboard.rank_stability import RANK_RESAMPLES
from medico.leaderboard.ranking import Ranked
from medico.leaderboard.team import TEAM_VARIABLE

__all__ = [
    "MEANINGS",
    "NO_SPEED",
    "Column",
    "best_values",
    "display_columns",
    "format_distance",
    "format_fps",
    "format_interval",
    "format_score",
    "model_text",
]


NO_SPEED = "no speed measured (a scored archive holds masks only) or published"
"""Why FPS, at and device read ``-``."""
_UNSTATED = "-: no FPS, or a published figure that does not say"
_MEAN = "mean over images"

MEANINGS = {
    "rank": "place within its table: by mIoU, then Dice, then the earlier entry (task 2: by FPS); ties share a rank; "
    f"on a closed challenge, (low–high) is the 95% interval of the rank over {RANK_RESAMPLES:,} bootstrap resamples of "
    "the private images",
    "team": f"who the row counts for: medico run's --team, else ${TEAM_VARIABLE}, else the login name; medico "
    "score's --team; a hosted challenge's team",
    "run": "the team's run number (on a hosted challenge: its n-th upload)",
    "model": "the model plugin, with its test-time augmentation or ensemble; submission: an archive without a manifest",
    "mIoU": f"intersection over union of predicted and true polyp, {_MEAN}; with --ci, [low, high] is its 95% "
    "bootstrap interval",
    "Dice": f"Dice coefficient (F1 of the polyp pixels), {_MEAN}; with --ci, [low, high] as for mIoU",
    "precision": f"share of predicted polyp pixels that are polyp, {_MEAN}",
    "recall": f"share of polyp pixels predicted as polyp, {_MEAN}",
    "F2": f"F-score weighting recall above precision (beta 2), {_MEAN}",
    "S": "structure measure (S-measure): object and region similarity to the true mask",
    "meanEm": "enhanced-alignment measure (E-measure), mean over thresholds",
    "wFm": "weighted F-measure",
    "MAE": "mean absolute error of the mask, lower is better",
    "HD95": "95th percentile Hausdorff distance to the true outline in pixels, lower is better",
    "FPS": "frames per second at batch 1, median after warm-up (the model alone unless the table says end-to-end); "
    f"-: {NO_SPEED}",
    "at": f"the precision FPS was measured at (fp32, bf16 or fp16); {_UNSTATED}",
    "device": f"the device FPS was measured on; {_UNSTATED}",
    "date": "when the entry was recorded (a published figure: its year)",
}
"""What each column means, by header: the one home of the legend under every table (terminal, markdown, html)."""


def format_score(value: float | None) -> str:
    """A score in [0, 1] as people quote it here: four decimals (``0.8988``), ``-`` when not given."""
    return "-" if value is None else f"{value:.4f}"


def format_fps(value: float | None) -> str:
    """Frames per second with one decimal, ``-`` when not given."""
    return "-" if value is None else f"{value:.1f}"


def format_distance(value: float | None) -> str:
    """A distance in pixels with one decimal, ``-`` when not given."""
    return "-" if value is None else f"{value:.1f}"


def format_interval(mean: float | None, low: float | None, high: float | None) -> str:
    """``0.812 [0.78, 0.84]``: the mean with three decimals and its interval with two, the bounds rounded outwards so
    the printed interval is never narrower than the computed one; the plain score when there is no interval."""
    if mean is None or low is None or high is None:
        return format_score(mean)
    low_text = math.floor(round(low * 100, 6)) / 100
    high_text = math.ceil(round(high * 100, 6)) / 100
    return f"{mean:.3f} [{low_text:.2f}, {high_text:.2f}]"


def _text(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def _rank_text(row: Ranked) -> str:
    """The rank, with its bootstrap interval where the row has one: ``2 (1–3)``."""
    if row.interval is None:
        return _text(row.rank)
    low, high = row.interval
    return f"{_text(row.rank)} ({low}–{high})"


@dataclass(frozen=True)
class Column:
    """One displayed column: ``value`` gives the raw value of a row, ``text`` formats it; ``higher_is_better`` marks
    the columns whose best value is highlighted; ``secondary`` ones are left out where space is short; ``row_text``,
    where given, writes a row's cell from more than the value (a mean and its interval)."""

    header: str
    value: Callable[[Ranked], object]
    text: Callable[[object], str] = _text
    higher_is_better: bool = False
    numeric: bool = False
    secondary: bool = False
    row_text: Callable[[Ranked], str] | None = None

    @property
    def meaning(self) -> str:
        """What the column means, in one line (:data:`MEANINGS`)."""
        return MEANINGS[self.header]

    def cell(self, row: Ranked) -> str:
        """The text of this column for ``row``."""
        return self.row_text(row) if self.row_text is not None else self.text(self.value(row))


def _score(name: str, header: str, secondary: bool = False, interval: bool = False) -> Column:
    def with_interval(row: Ranked) -> str:
        low, high = (getattr(row.entry, f"{name}_ci_{side}") for side in ("low", "high"))
        return format_interval(getattr(row.entry, name), low, high)

    return Column(
        header,
        lambda row: getattr(row.entry, name),
        format_score,
        higher_is_better=True,
        numeric=True,
        secondary=secondary,
        row_text=with_interval if interval else None,
    )


def _paper_columns() -> list[Column]:
    """The measures polyp papers report, as they name them; MAE and HD95 (pixels) are better lower, so never
    highlighted as the largest."""
    lower = [
        Column("MAE", lambda row: row.entry.mae, format_score, numeric=True),
        Column("HD95", lambda row: row.entry.hd95, format_distance, numeric=True),
    ]
    return [_score("smeasure", "S"), _score("mean_em", "meanEm"), _score("wfm", "wFm"), *lower]


def model_text(model: str, tta: str = "none", ensemble: int = 1) -> str:
    """The model as the leaderboard names it, with how it predicted where that is more than one model without
    test-time augmentation: ``attunet (tta flip, ensemble of 3)``."""
    how = ([f"tta {tta}"] if tta != "none" else []) + ([f"ensemble of {ensemble}"] if ensemble > 1 else [])
    return f"{_text(model)} ({', '.join(how)})" if how else _text(model)


def _model_text(row: Ranked) -> str:
    return model_text(row.entry.model, row.entry.tta, row.entry.ensemble)


def display_columns(task: str, intervals: bool = False, paper: bool = False) -> list[Column]:
    """rank, team, run, model, the scores (FPS first for the efficiency task, the precision it was measured at beside
    it), device, date; ``intervals`` shows mIoU and Dice with their 95% bootstrap interval where an entry has one;
    ``paper`` adds the measures polyp papers report after F2."""
    scores = [
        _score("iou", "mIoU", interval=intervals),
        _score("dice", "Dice", interval=intervals),
        _score("precision", "precision", secondary=True),
        _score("recall", "recall", secondary=True),
        _score("f2", "F2", secondary=True),
        *(_paper_columns() if paper else []),
    ]
    fps = Column("FPS", lambda row: row.entry.fps, format_fps, higher_is_better=True, numeric=True)
    precision = Column("at", lambda row: row.entry.fps_precision)
    measures = [fps, precision, *scores] if task == "efficiency" else [*scores, fps, precision]
    return [
        Column("rank", lambda row: row.rank, numeric=True, row_text=_rank_text),
        Column("team", lambda row: row.entry.team),
        Column("run", lambda row: row.entry.run, numeric=True),
        Column("model", lambda row: row.entry.model, row_text=_model_text),
        *measures,
        Column("device", lambda row: row.entry.fps_device),
        Column("date", lambda row: (row.entry.created or "")[:10], secondary=True),
    ]


def best_values(rows: list[Ranked], columns: list[Column]) -> dict[str, object]:
    """The best (largest) value of each higher-is-better column over ``rows``; columns with no value are left out."""
    best: dict[str, object] = {}
    for column in columns:
        values = [value for row in rows if (value := column.value(row)) is not None]
        if column.higher_is_better and values:
            best[column.header] = max(values)
    return best
