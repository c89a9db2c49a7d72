"""The organiser's report as one self-contained HTML page: tables of the numbers and the figures inlined as SVG, no
script and no outside resource (its Content-Security-Policy forbids both), every participant text escaped."""

from __future__ import annotations

import html
from typing import Any

from medico.challenge.report.analysis import Report
from medico.challenge.report.figures import FIGURES, draw_figures
from medico.challenge.report.methods import METHODS
from medico.leaderboard.columns import format_interval, format_score

__all__ = ["report_html"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #ddd; text-align: left; }
td { white-space: nowrap; }
table.facts td { white-space: normal; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { margin: 1em 0 2em; }
figure svg { max-width: 100%; height: auto; }
figcaption { color: #444; font-size: 0.9em; max-width: 50em; }
.preview { background: #fff3cd; border: 1px solid #e0b800; padding: 0.6em 1em; }
dl.findings { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dl.findings dt { font-weight: bold; }
dl.findings dd { margin: 0; }
"""
_POLICY = "default-src 'none'; style-src 'unsafe-inline'"
"""No script, no fetch, no outside font or image: the page shows what it holds and nothing else."""
_REFERENCES = (
    "L. Maier-Hein et al., Why rankings of biomedical image analysis competitions should be interpreted with care. "
    "Nature Communications 9, 5217 (2018).",
    "M. Wiesenfarth et al., Methods and open-source toolkit for analyzing and visualizing challenge results "
    "(challengeR). Scientific Reports 11, 2369 (2021).",
)


def _e(value: object) -> str:
    return html.escape(str(value))


def _table(headers: list[str], rows: list[list[tuple[str, bool]]], kind: str = "numbers") -> str:
    """A table (no header row without ``headers``) of class ``kind``; each cell is ``(text, numeric)``, its text
    escaped here."""
    head = "<thead><tr>" + "".join(f"<th>{_e(header)}</th>" for header in headers) + "</tr></thead>" if headers else ""
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{_e(text)}</td>' if numeric else f"<td>{_e(text)}</td>"
                         for text, numeric in row) + "</tr>"
        for row in rows
    )
    return f'<table class="{kind}">{head}<tbody>{body}</tbody></table>'


def _figure(name: str, svg: str) -> str:
    return f'<figure id="figure-{name}">{svg}<figcaption>{_e(FIGURES[name])}</figcaption></figure>'


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _design(report: Report) -> str:
    parts = []
    for section, facts in report.design.items():
        parts.append(f"<h3>{_e(section)}</h3>")
        parts.append(_table([], [[(what, False), (_value(value), False)] for what, value in facts.items()], "facts"))
    return "".join(parts)


def _findings(report: Report) -> str:
    winner = report.teams[0]
    low, high = winner.rank_interval
    tau = report.kendall_summary()
    first = report.methods["test then rank"].count(1)
    moved = len(report.moved_by_aggregation())
    facts = [
        ("winner", f"{winner.team}: mIoU {format_interval(winner.miou, *winner.miou_interval)}"),
        ("winner's 95% rank interval", f"{low}–{high}; ranked first in {winner.rank_frequencies[0]:.1%} of "
         f"{report.resamples:,} bootstrap resamples"),
        ("median Kendall's tau", "-" if tau["median"] is None else f"{tau['median']:.3f} (2.5–97.5%: "
         f"{tau['p2.5']:.3f} to {tau['p97.5']:.3f})"),
        ("rank 1 under test-then-rank", f"{first} of {len(report.teams)} teams (none significantly better than them)"),
        ("teams whose rank changes with the aggregation", f"{moved} of {len(report.teams)} (mean or median, "
         "rank-then-mean, mIoU or Dice)"),
    ]
    return '<dl class="findings">' + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts) + "</dl>"


def _ranking(report: Report) -> str:
    headers = ["rank", "team", "model", "submission", "mIoU [95% interval]", "Dice", "median rank",
               "95% rank interval", "ranked first", "test-then-rank"]
    rows = [
        [(str(team.rank), True), (team.team, False), (team.model, False), (_value(team.submission), True),
         (format_interval(team.miou, *team.miou_interval), True), (format_score(team.dice), True),
         (f"{team.median_rank:g}", True), (f"{team.rank_interval[0]}–{team.rank_interval[1]}", True),
         (f"{team.rank_frequencies[0]:.1%}", True), (str(report.methods["test then rank"][index]), True)]
        for index, team in enumerate(report.teams)
    ]
    return _table(headers, rows)


def _methods(report: Report) -> str:
    headers = ["team", *METHODS]
    rows = [[(team.team, False), *((str(report.methods[name][index]), True) for name in METHODS)]
            for index, team in enumerate(report.teams)]
    legend = "".join(f"<dt>{_e(name)}</dt><dd>{_e(what)}</dd>" for name, what in METHODS.items())
    return _table(headers, rows) + f'<dl class="findings">{legend}</dl>'


def _kendall(report: Report) -> str:
    tau = report.kendall_summary()
    if tau["median"] is None:
        return "<p>A single team: no ranking to compare.</p>"
    names = {"median": "median", "mean": "mean", "p2.5": "2.5th percentile", "p97.5": "97.5th percentile",
             "min": "smallest"}
    rows = [[(f"Kendall's tau, {label}", False), (f"{tau[key]:.3f}", True)] for key, label in names.items()]
    rows.append([("resamples ranked exactly as the final ranking", False), (f"{tau['identical']:.1%}", True)])
    return _table([], rows)


def report_html(report: Report) -> str:
    """The report as an HTML page, figures included."""
    figures = draw_figures(report)
    state = "preview" if report.preview else "final report"
    title = f"{report.challenge}: {state}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_POLICY}">',
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
    ]
    if report.preview:
        parts.append(f'<p class="preview">Preview as of {_e(report.as_of)}: the challenge is not closed, teams may '
                     "still upload and select, and this page holds private scores. Do not publish it.</p>")
    parts += [
        f"<p>Ranking as of {_e(report.as_of)}, on the {len(report.images)} private images; bootstrap: "
        f"{report.resamples:,} resamples of those images, seed {report.seed} (the same database and seed give the "
        "same numbers).</p>",
        "<h2>Findings</h2>", _findings(report),
        "<h2>Design</h2>", _design(report),
        "<h2>Final ranking</h2>", _ranking(report), _figure("ranking", figures["ranking"]),
        "<h2>Rank stability</h2>",
        f"<p>The private images were resampled with replacement {report.resamples:,} times and the teams ranked again "
        "by the challenge's rule on each resample.</p>",
        _figure("blobs", figures["blobs"]), _kendall(report), _figure("kendall", figures["kendall"]),
        "<h2>Pairwise significance</h2>",
        f"<p>For every ordered pair of teams, a one-sided Wilcoxon signed-rank test of their per-image IoU (zero "
        f"differences dropped), the {len(report.teams) * (len(report.teams) - 1)} p-values Holm-adjusted together; "
        f"significant below α = {report.tests.alpha:g}. Test-then-rank: a team's rank is 1 + the number of teams "
        "significantly better than it.</p>",
        _figure("significance", figures["significance"]),
        "<h2>Robustness to the ranking method</h2>", _methods(report), _figure("methods", figures["methods"]),
        "<h2>Per-image scores</h2>", _figure("per_image", figures["per_image"]),
        "<h2>References</h2><ol>", *(f"<li>{_e(reference)}</li>" for reference in _REFERENCES), "</ol>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
