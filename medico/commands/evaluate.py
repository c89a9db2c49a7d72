"""``medico evaluate``: score a checkpoint on a validation split at the original resolution."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from medico import evaluation
from medico.commands.options import TrustedModel
from medico.console import console, err_console, task_progress
from medico.metrics import METRIC_NAMES, THRESHOLD
from medico.runs import find_run, resolve_checkpoint


def evaluate(
    checkpoint: Annotated[str, typer.Argument(help="A .pt checkpoint, or a run: number, id, folder or 'latest'.")],
    data: Annotated[
        Path | None, typer.Option(help="Dataset folder or zip (default: the one the checkpoint was trained on).")
    ] = None,
    split: Annotated[
        str,
        typer.Option(
            help="val (the checkpoint's own split), medico2020, random, auto or a folder holding train.txt and "
            "val.txt; its val part is scored."
        ),
    ] = "val",
    threshold: Annotated[float, typer.Option(help="Probability at or above which a pixel is polyp.")] = THRESHOLD,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for per_image.csv and metrics.json (default: RUN/evaluation for a run, else .)."),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    precision: Annotated[str, typer.Option(help="auto, fp32, bf16 or fp16.")] = "auto",
    batch_size: Annotated[int, typer.Option(min=1, help="Images per forward pass.")] = 8,
    model: TrustedModel = None,
) -> None:
    """Score a checkpoint on a validation split at each image's original resolution.

    Dice, IoU, precision, recall, F2 and accuracy per image; prints mean ± std over images and the metric
    policy, and writes per_image.csv and metrics.json.
    """
    path = resolve_checkpoint(checkpoint)
    run_dir = None if Path(checkpoint).is_file() else find_run(checkpoint)
    predictor, stored = evaluation.load_predictor(
        path, model=model, device=device, precision=precision, threshold=threshold
    )
    dataset, chosen = evaluation.validation_data(stored, data=data, split=split)
    err_console.print(
        f"Scoring [bold]{escape(str(path))}[/] ({escape(stored.model_spec)}, {stored.input_size}px) on "
        f"{escape(dataset.description)}, split {escape(chosen.name)}: {len(chosen.val)} validation images"
    )
    with task_progress() as progress:
        task = progress.add_task("evaluating", total=len(chosen.val), status="")
        result = evaluation.evaluate(
            predictor,
            dataset,
            chosen.val,
            batch_size=batch_size,
            progress=lambda done, total: progress.update(task, completed=done),
        )
    # a run's own per_image.csv and metrics.json (written by `medico run`) are left as they are
    folder = out or (run_dir / "evaluation" if run_dir is not None else Path("."))
    result.write(folder)

    table = Table(title=f"validation ({result.summary['n_images']} images, threshold {predictor.threshold})")
    table.add_column("metric")
    table.add_column("mean ± std", justify="right")
    for name in METRIC_NAMES:
        table.add_row(name, f"{result.summary[name]:.4f} ± {result.summary[name + '_std']:.4f}")
    console.print(table)
    for key, value in result.policy.items():
        console.print(f"[dim]policy {escape(key)}:[/] {escape(str(value))}")
    console.print(f"per-image scores: {escape(str(folder / 'per_image.csv'))}")
