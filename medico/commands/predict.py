"""``medico predict``: masks for a folder of images, one PNG per image at the image's own size."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from medico.commands.options import MaskPrecision, Sweep, TrustedModel, Tta
from medico.console import console, task_progress
from medico.data.io import list_images, read_rgb
from medico.engine import evaluation, runtimes
from medico.engine.runtime import MASK_PRECISION
from medico.errors import MedicoError
from medico.files import atomic_folder, check_target
from medico.metrics import THRESHOLD
from medico.runs.members import resolve_members
from medico.submission.writer import mask_png


def predict(
    arguments: Annotated[
        list[str],
        typer.Argument(
            metavar="[CHECKPOINT]... IMAGES",
            help="Checkpoints (.pt), runs (number, id, name, folder or 'latest'; none: the latest run, or --sweep's) "
            "or one exported .onnx file; several: the mean of their probabilities (an ensemble); last, the folder of "
            "images (JPEG, PNG...).",
            show_default=False,
        ),
    ],
    out: Annotated[Path, typer.Option(help="Folder for the masks: NAME.png, values 0/255 (not the images folder).")],
    force: Annotated[bool, typer.Option(help="Replace masks already in --out.")] = False,
    threshold: Annotated[float, typer.Option(help="Probability at or above which a pixel is polyp.")] = THRESHOLD,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    precision: MaskPrecision = MASK_PRECISION,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per forward pass.")] = 8,
    compile: Annotated[
        bool, typer.Option("--compile/--no-compile", help="torch.compile with frozen weights: faster after ~20 s.")
    ] = False,
    runtime: Annotated[
        str,
        typer.Option(
            help="auto (torch for a checkpoint; for an .onnx file openvino where installed, else onnxruntime), torch, "
            "onnxruntime (medico[onnx]) or openvino (medico[openvino])."
        ),
    ] = "auto",
    tta: Tta = "none",
    sweep: Sweep = None,
    model: TrustedModel = None,
) -> None:
    """Predict a mask for every image in a folder: single-channel PNG, 0/255, at the image's own width and height.

    Several checkpoints or runs (or --sweep) predict together: the mean of their probabilities is thresholded.

    The masks appear in --out together once all are predicted; after a failure none of them does.
    """
    *checkpoints, folder = arguments
    images = Path(folder)
    paths = list_images(images)
    if out.resolve() == images.resolve():
        raise MedicoError(f"--out {out}: this is the images folder; write the masks to another folder")
    stems = [p.stem for p in paths]
    duplicates = sorted({s for s in stems if stems.count(s) > 1})
    if duplicates:
        raise MedicoError(f"{images}: several images share the name {duplicates[0]!r}; their masks would collide")
    members = resolve_members(checkpoints, sweep)
    settings = {"model": model, "device": device, "precision": precision, "threshold": threshold, "compile": compile}
    if len(members) == 1:
        predictor = runtimes.load_predictor(members[0], runtime=runtime, tta=tta, **settings)
    elif runtime in ("auto", "torch"):
        predictor, _ = evaluation.load_ensemble(members, tta=tta, **settings)
    else:
        raise MedicoError(f"--runtime {runtime}: runs one model; an ensemble of {len(members)} runs in torch")
    with atomic_folder(out, replace=force) as staging:
        for stem in stems:
            check_target(out / f"{stem}.png", replace=force)  # refused now, not after predicting every image
        with task_progress() as progress:
            task = progress.add_task("predicting", total=len(paths), status="")
            masks = predictor.predict_all((read_rgb(p) for p in paths), batch_size=batch_size)
            for stem, mask in zip(stems, masks):
                (staging / f"{stem}.png").write_bytes(mask_png(mask))
                progress.advance(task)
    console.print(f"wrote {len(paths)} masks to {escape(str(out))}")
