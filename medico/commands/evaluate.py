"""``medico evaluate``: score a checkpoint on a validation split at the original resolution."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from medico.commands.options import MaskPrecision, Sweep, TrustedModel, Tta
from medico.console import console, err_console, task_progress
from medico.engine import evaluation
from medico.engine.runtime import MASK_PRECISION
from medico.metrics import METRIC_NAMES, THRESHOLD
from medico.polyp_metrics import PAPER_METRICS
from medico.runs.dataset import OWN_SPLIT, ensemble_data
from medico.runs.folder import PER_IMAGE, evaluation_folder
from medico.runs.members import resolve_members


def evaluate(
    checkpoints: Annotated[
        list[str] | None,
        typer.Argument(
            help="A .pt checkpoint, or a run: number, id, name, folder or 'latest' (default: the latest run); "
            "several: the mean of their probabilities (an ensemble).",
            show_default=False,
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Dataset folder or zip (default: the one the run recorded, refused if it changed since; other "
            "data is said so in the results)."
        ),
    ] = None,
    split: Annotated[
        str,
        typer.Option(
            help="val (the run's own recorded validation images), all (every image of --data: another labelled "
            "set), medico2020, random, auto or a folder holding train.txt and val.txt; its val part is scored "
            "(another split than the run's is said so in the results)."
        ),
    ] = OWN_SPLIT,
    threshold: Annotated[float, typer.Option(help="Probability at or above which a pixel is polyp.")] = THRESHOLD,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Folder for per_image.csv and metrics.json (default: a new folder RUN/evaluations/N-best for a "
            "run's checkpoint, ./evaluations/N-NAME for another file; a run's own record is never replaced)."
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace per_image.csv and metrics.json already in --out.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    precision: MaskPrecision = MASK_PRECISION,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per forward pass.")] = 8,
    tta: Tta = "none",
    sweep: Sweep = None,
    model: TrustedModel = None,
    paper_metrics: Annotated[
        bool,
        typer.Option(
            "--paper-metrics",
            help="Also score what polyp papers report: S-measure, mean and adaptive E-measure, weighted F-measure and "
            "MAE of the probability map (PraNet's toolbox), HD95 of the mask in pixels.",
        ),
    ] = False,
) -> None:
    """Score a checkpoint, or an ensemble of several, on a validation split at each image's original resolution.

    Dice, IoU, precision, recall, F2 and accuracy per image; prints mean ± std over images and the metric
    policy, and writes per_image.csv and metrics.json into a new folder of their own. A run's checkpoint is scored
    on the validation images the run recorded, and refused if its dataset changed since, unless --data or --split
    say what to score instead (the results then say they are on other data).
    """
    paths = resolve_members(checkpoints or [], sweep)
    with evaluation_folder(paths[0], out, force=force) as folder:  # a used --out is refused before anything is scored
        predictor, stored = evaluation.load_ensemble(
            paths, model=model, device=device, precision=precision, threshold=threshold, tta=tta
        )
        chosen = ensemble_data(paths, stored, data=data, split=split)
        dataset, names = chosen.dataset, chosen.split.val
        scored = ", ".join(
            f"{escape(str(p))} ({escape(c.model_spec)}, {c.input_size}px)" for p, c in zip(paths, stored)
        )
        err_console.print(
            f"Scoring [bold]{scored}[/]{'' if tta == 'none' else f' with --tta {tta}'} on "
            f"{escape(dataset.description)}, split {escape(chosen.split.name)}: {len(names)} validation images"
        )
        with task_progress() as progress:
            task = progress.add_task("evaluating", total=len(names), status="")
            result = evaluation.evaluate(
                predictor,
                dataset,
                names,
                batch_size=batch_size,
                progress=lambda done, total: progress.update(task, completed=done),
                paper=paper_metrics,
            )
        result.write(folder, chosen.as_dict(), evaluation.prediction_record(predictor, paths, stored))

    how = "" if len(paths) == 1 else f", ensemble of {len(paths)}"
    how += "" if tta == "none" else f", tta {tta}"
    table = Table(title=f"validation ({result.summary['n_images']} images, threshold {predictor.threshold}{how})")
    table.add_column("metric")
    table.add_column("mean ± std", justify="right")
    for name in (*METRIC_NAMES, *(PAPER_METRICS if paper_metrics else ())):
        table.add_row(name, f"{result.summary[name]:.4f} ± {result.summary[name + '_std']:.4f}")
    console.print(table)
    for key, value in result.policy.items():
        console.print(f"[dim]policy {escape(key)}:[/] {escape(str(value))}")
    if chosen.other is not None:
        console.print(f"[yellow]{escape(chosen.other)}[/]")
    console.print(f"per-image scores: {escape(str(folder / PER_IMAGE))}")
