"""The report's figures, drawn by matplotlib and returned as SVG text to embed in the page: the ranking with its
intervals, the rank distributions as a blob plot (challengeR's), Kendall's tau over the resamples, the significance
map, the ranks under each ranking method, and the per-image scores.

This module imports matplotlib: import it only where a report is drawn (light commands never load it). Figures are made
without pyplot (no global state); text stays text (``svg.fonttype`` none: selectable, escaped by matplotlib's SVG
writer, never read as mathtext); each figure's ids are prefixed with its name, so that several figures live in one page
without clashing.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Callable

import matplotlib
import numpy as np
from matplotlib import colormaps
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from medico.challenge.report.analysis import Report

__all__ = ["FIGURES", "draw_figures"]

FIGURES = {
    "ranking": "Final ranking: each team's mean mIoU over the private images and its 95% bootstrap interval.",
    "blobs": "Rank stability: the share of bootstrap resamples that gave each team each rank (dot area); the black "
    "cross marks the median rank and the line the 95% rank interval.",
    "kendall": "Kendall's tau between the final ranking and the ranking of each bootstrap resample.",
    "significance": "Pairwise significance: a coloured cell means the row's team scores significantly higher IoU than "
    "the column's (one-sided Wilcoxon signed-rank test, Holm-adjusted over every ordered pair).",
    "methods": "Each team's rank under each ranking method (one line per team).",
    "per_image": "Each team's IoU on every private image (dots) and their spread (boxes: quartiles and median).",
}
"""Each figure, by its name in the page, and its caption."""

_STYLE = {
    "svg.fonttype": "none",
    "svg.hashsalt": "medico-report",  # ids from a fixed salt: the same report draws the same SVG
    "text.parse_math": False,  # a team called $x$ is a name, not a formula
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_LABEL = 28
_BLUE, _GREY, _YELLOW = "#1f5f9f", "#d9d9d9", "#f2c12e"


def _label(rank: int, team: str) -> str:
    name = team if len(team) <= _LABEL else team[: _LABEL - 1] + "…"
    return f"{rank}. {name}"


def _labels(report: Report) -> list[str]:
    return [_label(team.rank, team.team) for team in report.teams]


def _tall(teams: int) -> Figure:
    """A figure tall enough for one row per team."""
    return Figure(figsize=(7.5, max(2.4, 0.27 * teams + 1.3)), layout="constrained")


def _ranking(report: Report) -> Figure:
    fig = _tall(len(report.teams))
    axes = fig.subplots()
    rows = np.arange(len(report.teams))
    means = np.array([team.miou for team in report.teams])
    lows = np.array([team.miou_interval[0] for team in report.teams])
    highs = np.array([team.miou_interval[1] for team in report.teams])
    axes.errorbar(means, rows, xerr=[means - lows, highs - means], fmt="o", color=_BLUE, capsize=3, markersize=4)
    axes.set_yticks(rows, _labels(report))
    axes.invert_yaxis()
    axes.set_xlabel(f"mean mIoU over {len(report.images)} private images, with its 95% bootstrap interval")
    axes.grid(axis="x", color=_GREY, linewidth=0.6)
    return fig


def _blobs(report: Report) -> Figure:
    teams = len(report.teams)
    fig = Figure(figsize=(max(5.0, 0.38 * teams + 2.5), max(3.2, 0.27 * teams + 2.2)), layout="constrained")
    axes = fig.subplots()
    frequencies = np.array([team.rank_frequencies for team in report.teams])
    columns, ranks = np.nonzero(frequencies)
    axes.scatter(columns, ranks + 1, s=frequencies[columns, ranks] * 260, color=_BLUE, alpha=0.75, linewidths=0)
    for column, team in enumerate(report.teams):
        axes.plot([column, column], team.rank_interval, color="black", linewidth=1)
        axes.plot(column, team.median_rank, marker="x", color="black", markersize=5)
    axes.plot([0, teams - 1], [1, teams], color=_GREY, linewidth=0.8, zorder=0)  # where an unmoved ranking lies
    axes.set_xticks(range(teams), _labels(report), rotation=55, ha="right", rotation_mode="anchor")
    axes.set_yticks(range(1, teams + 1))
    axes.set_ylim(teams + 0.7, 0.3)
    axes.set_xlim(-0.7, teams - 0.3)
    axes.set_ylabel(f"rank over {report.resamples:,} bootstrap resamples")
    axes.grid(color=_GREY, linewidth=0.4)
    return fig


def _kendall(report: Report) -> Figure:
    fig = Figure(figsize=(6.0, 2.8), layout="constrained")
    axes = fig.subplots()
    taus = report.taus[~np.isnan(report.taus)]
    if taus.size:
        teams = len(report.teams)
        step = 4 / (teams * (teams - 1))  # the spacing of tau's values between untied rankings: one bar for each
        edges = np.arange(1.0 + step / 2, float(taus.min()) - step, -step)[::-1]
        axes.hist(taus, bins=edges, color=_BLUE, rwidth=0.85)
        median = float(np.median(taus))
        axes.axvline(median, color="black", linewidth=1)
        axes.annotate(f"median {median:.3f}", (median, 1), xycoords=("data", "axes fraction"), xytext=(-4, -4),
                      textcoords="offset points", ha="right", va="top",
                      bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
    else:
        axes.text(0.5, 0.5, "a single team: no ranking to compare", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel("Kendall's tau (1: the resample ranks every team as the final ranking does)")
    axes.set_ylabel("resamples")
    return fig


def _significance(report: Report) -> Figure:
    teams = len(report.teams)
    side = max(3.6, 0.3 * teams + 2.6)
    fig = Figure(figsize=(side + 0.6, side), layout="constrained")
    axes = fig.subplots()
    cells = report.tests.significant.astype(float)
    np.fill_diagonal(cells, np.nan)
    colours = ListedColormap([_BLUE, _YELLOW]).with_extremes(bad="white")
    edges = np.arange(teams + 1) - 0.5  # vector cells (pcolormesh), never a bitmap: the page loads no image
    axes.pcolormesh(edges, edges, np.ma.masked_invalid(cells), cmap=colours, vmin=0, vmax=1, edgecolors="white",
                    linewidth=1)
    axes.set_aspect("equal")
    axes.invert_yaxis()
    labels = _labels(report)
    axes.set_xticks(range(teams), labels, rotation=55, ha="right", rotation_mode="anchor")
    axes.set_yticks(range(teams), labels)
    axes.set_ylabel("is this team significantly better ...")
    axes.set_xlabel("... than this team?")
    legend = [Patch(color=_YELLOW, label="yes"), Patch(color=_BLUE, label="no")]
    axes.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                title=f"Holm, α = {report.tests.alpha:g}")
    return fig


def _methods(report: Report) -> Figure:
    teams, names = len(report.teams), list(report.methods)
    fig = Figure(figsize=(8.5, max(3.0, 0.27 * teams + 1.6)), layout="constrained")
    axes = fig.subplots()
    palette = colormaps["tab20"] if teams > 10 else colormaps["tab10"]
    positions = np.arange(len(names))
    for index in range(teams):
        axes.plot(positions, [report.methods[name][index] for name in names], marker="o", markersize=3.5,
                  linewidth=1.2, color=palette(index % palette.N), alpha=0.9)
    axes.set_yticks([team.rank for team in report.teams], _labels(report))  # each line starts at its team's name
    axes.secondary_yaxis("right").set_yticks(range(1, teams + 1))
    axes.set_xticks(positions, names)
    axes.set_ylim(teams + 0.6, 0.4)
    axes.set_xlim(-0.2, len(names) - 0.8)
    axes.set_xlabel("ranking method (the rank on the right)")
    axes.grid(axis="y", color=_GREY, linewidth=0.4)
    return fig


def _per_image(report: Report) -> Figure:
    fig = _tall(len(report.teams))
    axes = fig.subplots()
    scores = [team.per_image_iou for team in report.teams]
    rows = np.arange(len(scores))
    axes.boxplot(scores, positions=rows, orientation="horizontal", widths=0.6, showfliers=False,
                 medianprops={"color": "black"}, boxprops={"color": "#555555"}, whiskerprops={"color": "#555555"},
                 capprops={"color": "#555555"})
    jitter = np.random.default_rng(report.seed)
    for row, values in zip(rows, scores):
        axes.scatter(values, row + jitter.uniform(-0.22, 0.22, len(values)), s=6, color=_BLUE, alpha=0.45,
                     linewidths=0)
    axes.set_yticks(rows, _labels(report))
    axes.invert_yaxis()
    axes.set_xlim(-0.02, 1.02)
    axes.set_xlabel("IoU per private image")
    axes.grid(axis="x", color=_GREY, linewidth=0.6)
    return fig


_DRAWERS: dict[str, Callable[[Report], Figure]] = {
    "ranking": _ranking,
    "blobs": _blobs,
    "kendall": _kendall,
    "significance": _significance,
    "methods": _methods,
    "per_image": _per_image,
}


def _svg(figure: Figure, name: str) -> str:
    """``figure`` as an ``<svg>`` element for an HTML page: no XML prolog, ids and references prefixed by ``name``."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r'\bid="', f'id="{name}-', text)
    text = re.sub(r'(href=")#', rf"\1#{name}-", text)
    return re.sub(r"url\(#", f"url(#{name}-", text)


def draw_figures(report: Report) -> dict[str, str]:
    """Every figure of :data:`FIGURES` for ``report``, as SVG text by name."""
    drawn = {}
    with matplotlib.rc_context(_STYLE), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing", category=UserWarning)  # the browser draws text
        for name, draw in _DRAWERS.items():
            drawn[name] = _svg(draw(report), name)
    return drawn
