"""``medico compare A B``: two runs (or two sweeps, ``--sweeps``) compared image by image on the same images."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from medico.console import console
from medico.metrics import METRIC_NAMES
from medico.stats.paired_runs import RunComparison, compare_runs

__all__ = ["compare"]

_LABELS = {"iou": "mIoU", "dice": "Dice"}


def _table(comparison: RunComparison) -> Table:
    r, a, b = comparison.result, escape(comparison.run_a), escape(comparison.run_b)
    label = _LABELS.get(comparison.metric, comparison.metric)
    percent = f"{r.confidence:.0%}"
    table = Table(title=f"{a} (A) vs {b} (B): {label} on the same {r.n} images", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row(f"mean {label} A", f"{r.mean_a:.4f}")
    table.add_row(f"mean {label} B", f"{r.mean_b:.4f}")
    table.add_row("mean difference A - B", f"{r.mean_difference:+.4f}", style="bold")
    table.add_row(f"{percent} CI (paired bootstrap)", f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}]")
    table.add_row("Wilcoxon W+ / W-", f"{r.wilcoxon_plus:g} / {r.wilcoxon_minus:g}")
    table.add_row(f"p-value (two-sided, {r.p_method})", f"{r.p_value:.3g}")
    table.add_row("A better", f"{r.wins} ({r.share_a_better:.1%})")
    table.add_row("B better", f"{r.losses} ({r.losses / r.n:.1%})")
    table.add_row("ties", f"{r.ties} ({r.ties / r.n:.1%})")
    return table


def _verdict(comparison: RunComparison) -> str:
    r = comparison.result
    percent = f"{r.confidence:.0%}"
    if r.ci_low > 0 or r.ci_high < 0:
        better = comparison.run_a if r.ci_low > 0 else comparison.run_b
        return f"{escape(better)} is better: the {percent} interval of the mean difference excludes 0"
    return f"no clear difference: the {percent} interval of the mean difference includes 0"


def compare(
    run_a: Annotated[
        str, typer.Argument(help="Run A: number, id (3-attunet), name, folder or latest (a sweep: --sweeps).")
    ],
    run_b: Annotated[str, typer.Argument(help="Run B, the same way.")],
    metric: Annotated[
        str, typer.Option("--metric", help=f"Per-image score to compare: {', '.join(METRIC_NAMES)}.")
    ] = "iou",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap resampling.")] = 0,
    sweeps: Annotated[
        bool,
        typer.Option(
            "--sweeps",
            help="A and B are sweeps (number, id or latest in runs/sweeps/): each image's score is its mean over the "
            "sweep's runs, e.g. two recipes trained with --seeds 0,1,2.",
        ),
    ] = False,
) -> None:
    """Compare two runs, or two sweeps, image by image on the same validation images.

    Shows the per-image differences A - B, their mean with a paired-bootstrap 95% interval, Wilcoxon's
    signed-rank test, and how often each run is better.
    """
    comparison = compare_runs(run_a, run_b, metric=metric, sweeps=sweeps, seed=seed)
    console.print(_table(comparison))
    console.print(_verdict(comparison))
