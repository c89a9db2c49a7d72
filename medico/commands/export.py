"""``medico export``: a run's model as an ONNX or TorchScript file, checked against the eager model first."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.markup import escape

from medico.commands.options import TrustedModel
from medico.console import console
from medico.engine.export import (
    CALIBRATION_IMAGES,
    MIN_DICE,
    MIN_DICE_INT8,
    SUFFIXES,
    export_checkpoint,
    real_frames,
)
from medico.metrics import THRESHOLD
from medico.runs.checkpoint import load_checkpoint
from medico.runs.folder import RunFolder, resolve_checkpoint


def export(
    checkpoint: Annotated[
        str, typer.Argument(help="A .pt checkpoint, or a run: number, id, name, folder or 'latest'.")
    ],
    format: Annotated[
        Literal["onnx", "torchscript"],
        typer.Option(help="onnx (runs in ONNX Runtime, `--runtime onnxruntime`) or torchscript."),
    ] = "onnx",
    out: Annotated[
        Path | None,
        typer.Option(help="The file to write (default: RUN.onnx or RUN.torchscript.pt in the current folder)."),
    ] = None,
    images: Annotated[
        Path | None,
        typer.Option(help="Folder of real frames to check the export on (default: the run's validation images)."),
    ] = None,
    int8: Annotated[
        bool,
        typer.Option(help="ONNX quantised to int8 for ONNX Runtime: faster on CPUs, masks at mean Dice >= 0.99."),
    ] = False,
    calibration: Annotated[
        Path | None,
        typer.Option(help="With --int8: folder of frames to calibrate on (default: the run's training images)."),
    ] = None,
    threshold: Annotated[float, typer.Option(help="Probability threshold recorded in the file.")] = THRESHOLD,
    force: Annotated[bool, typer.Option(help="Replace an existing --out file.")] = False,
    model: TrustedModel = None,
) -> None:
    """Export a checkpoint's model at its input size, the plugin's normalisation and padding inside the graph.

    The exported model takes a float32 batch (batch, 3, S, S) of RGB images scaled to [-1, 1] (a dynamic batch
    axis) and returns logits (batch, 1, S, S). It is written only if its masks agree with the eager model's on a
    few real frames (least per-image Dice >= 0.999); the file records the model, input size, normalisation,
    threshold, medico version and the checkpoint's SHA-256. With --int8 the ONNX graph is quantised (static,
    calibrated on 64 training frames) and must reach a mean mask Dice of 0.99 against the eager model instead.
    """
    path = resolve_checkpoint(checkpoint)
    run = RunFolder.containing(path)
    target = out if out is not None else Path((run.name if run is not None else path.stem) + SUFFIXES[format])
    stored = load_checkpoint(path, model=model)
    frames, described = real_frames(images, stored, path)
    calibrating = real_frames(calibration, stored, path, part="train", count=CALIBRATION_IMAGES)[0] if int8 else None
    if int8 and out is None:
        target = target.with_name(target.name.replace(SUFFIXES[format], "-int8" + SUFFIXES[format]))
    result = export_checkpoint(
        path, target, format, frames, model=model, threshold=threshold, force=force, calibration=calibrating
    )
    agreement = (
        f"mean Dice {result.mean_dice:.4f} (>= {MIN_DICE_INT8}), least {result.dice:.4f}"
        if int8 else f"least Dice {result.dice:.4f} (>= {MIN_DICE})"
    )
    kind = f"{result.format}{' int8' if int8 else ''}"
    console.print(
        f"wrote {escape(str(result.path))} ({kind}, {result.metadata['input_size']}px): masks agree with the eager "
        f"model's on {escape(described)}, {agreement}"
    )
