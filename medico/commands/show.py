"""``medico show`` and ``medico overlay``: ground truth (green outline) and prediction (red outline) on images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.markup import escape

from medico.commands.options import TrustedModel
from medico.console import console, err_console, task_progress
from medico.data.io import read_rgb
from medico.data.masks import read_mask
from medico.engine import evaluation
from medico.engine.inference import Predictor
from medico.errors import MedicoError
from medico.overlay import CONTACT_SHEET, best_and_worst, draw_overlay, save_png, write_overlays
from medico.runs.dataset import OWN_SPLIT, RunData, run_data
from medico.runs.folder import find_run, read_per_image


def show(
    run: Annotated[str, typer.Argument(help="A run: number, id, name, folder or 'latest'.")],
    data: Annotated[
        Path | None,
        typer.Option(help="Dataset folder or zip (default: the one the run recorded, refused if it changed since)."),
    ] = None,
    split: Annotated[
        str,
        typer.Option(
            help="val: the run's own validation images, ranked by its per_image.csv; all (every image of --data), "
            "medico2020, random, auto or a folder holding train.txt and val.txt: those images are scored first."
        ),
    ] = OWN_SPLIT,
    count: Annotated[int, typer.Option(min=1, help="How many best and how many worst validation images.")] = 4,
    out: Annotated[Path | None, typer.Option(help="Folder for the PNGs (default: RUN/overlays).")] = None,
    force: Annotated[
        bool, typer.Option(help="Replace existing PNGs in --out (those in RUN/overlays always are).")
    ] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    model: TrustedModel = None,
) -> None:
    """Overlay PNGs of a run's best and worst validation images, plus one contact sheet.

    Images are ranked by IoU in the run's per_image.csv (or, with another --split, by IoU scored now); ground truth
    is outlined green, the prediction red.
    """
    if split == OWN_SPLIT:
        run_folder, scores = read_per_image(run, ["iou", "dice"])
    else:
        run_folder = find_run(run)
    predictor, checkpoint = evaluation.load_predictor(run_folder.checkpoint("best"), model=model, device=device)
    drawn = run_data(checkpoint, run_folder, data=data, split=split)
    if split == OWN_SPLIT:
        drawn.check_held_out(scores["name"], str(run_folder.per_image))
    else:
        scores = _scored(predictor, drawn)
    chosen = best_and_worst(scores, count)
    if drawn.other is not None:
        err_console.print(f"[yellow]{escape(drawn.other)}[/]")
    folder = out or run_folder.overlays
    with task_progress() as progress:
        task = progress.add_task("drawing overlays", total=len(chosen), status="")
        paths = write_overlays(
            predictor,
            drawn.dataset,
            chosen,
            folder,
            replace=force or out is None,
            progress=lambda done, total: progress.update(task, completed=done),
        )
    console.print(f"wrote {len(paths) - 1} overlays and {CONTACT_SHEET} to {escape(str(folder))}")
    console.print("[green]green[/]: ground truth outline · [red]red[/]: prediction outline")


def _scored(predictor: Predictor, drawn: RunData) -> pd.DataFrame:
    """Per-image scores of ``predictor`` on the validation part of ``drawn``, scored as ``medico evaluate`` does."""
    names = drawn.split.val
    with task_progress() as progress:
        task = progress.add_task(f"scoring {len(names)} images", total=len(names), status="")
        result = evaluation.evaluate(
            predictor, drawn.dataset, names, progress=lambda done, total: progress.update(task, completed=done)
        )
    return result.per_image


def overlay(
    image: Annotated[Path, typer.Argument(help="The image (JPEG, PNG...).")],
    mask: Annotated[Path, typer.Argument(help="Its ground-truth mask (0/255 or 0/1, read as the organisers do).")],
    out: Annotated[Path, typer.Option(help="The PNG to write.")],
    pred: Annotated[Path | None, typer.Option(help="A predicted mask to outline in red.")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing --out file.")] = False,
) -> None:
    """Draw one image with its ground truth outlined green (and a predicted mask outlined red) into a PNG."""
    pixels = read_rgb(image)
    truth = read_mask(mask)
    prediction = read_mask(pred) if pred is not None else None
    for argument, path, values in (("MASK", mask, truth), ("--pred", pred, prediction)):
        if values is not None and values.shape != pixels.shape[:2]:
            raise MedicoError(
                f"{argument} {path}: expected a mask of the image's size {pixels.shape[1]}x{pixels.shape[0]}, "
                f"found {values.shape[1]}x{values.shape[0]} (width x height)"
            )
    save_png(out, draw_overlay(pixels, truth, prediction), replace=force)
    console.print(f"wrote {escape(str(out))}")
