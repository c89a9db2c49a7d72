"""A checkpoint's model exported (ONNX or TorchScript), checked against the eager model, and recorded in the file.

Nothing is written unless the exported model's masks agree with the eager model's on real frames: every image's
mask, at the image's own size, must reach a Dice of :data:`MIN_DICE` against the eager one (an image both leave
empty agrees fully). The file records what made it (:func:`export_metadata`): in ONNX ``metadata_props``, in a
TorchScript archive's ``medico.json``. An int8 ONNX export (:func:`medico.engine.graphs.write_int8`, calibrated on
training frames) is not exact by design: its masks must reach a mean Dice of :data:`MIN_DICE_INT8` instead.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medico import __version__
from medico.data import DataError
from medico.data.io import list_images, read_rgb
from medico.download import file_sha256
from medico.engine.graphs import FORMATS, GraphError, write_int8, write_onnx, write_torchscript
from medico.engine.inference import Predictor
from medico.engine.preprocess import normalize, to_tensor
from medico.engine.runtimes import load_onnx
from medico.files import atomic_path, check_target
from medico.metrics import THRESHOLD, confusion_counts, scores_from_counts
from medico.plugins import get_plugin
from medico.runs.checkpoint import Checkpoint, load_model
from medico.runs.dataset import OtherDataError, run_data
from medico.runs.folder import RunFolder

__all__ = [
    "FORMAT",
    "CALIBRATION_IMAGES",
    "MIN_DICE",
    "MIN_DICE_INT8",
    "SUFFIXES",
    "VERIFY_IMAGES",
    "ExportResult",
    "export_checkpoint",
    "export_metadata",
    "mask_agreement",
    "real_frames",
]

FORMAT = "medico-export/1"
MIN_DICE = 0.999
"""The least per-image mask Dice, exported against eager, that an export must reach to be written."""
MIN_DICE_INT8 = 0.99
"""The mean per-image mask Dice against eager fp32 that an int8 export must reach to be written."""
VERIFY_IMAGES = 8
"""How many frames the check predicts (the first of the folder or of the run's validation images, by name)."""
CALIBRATION_IMAGES = 64
"""How many frames calibrate int8 activation ranges (spread evenly over the folder or the run's training images)."""
SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_checkpoint` wrote and how well the exported model agreed with the eager one."""

    path: Path
    format: str
    dice: float
    """The least per-image mask Dice against the eager model."""
    mean_dice: float
    images: int
    metadata: dict[str, str]


def export_metadata(checkpoint: Checkpoint, source: Path, threshold: float) -> dict[str, str]:
    """What an exported file records of its model, input, threshold and origin (text values, as ONNX keeps them)."""
    plugin = get_plugin(checkpoint.model_spec)
    size = checkpoint.input_size
    return {
        "format": FORMAT,
        "model": checkpoint.model_spec,
        "model_options": json.dumps(checkpoint.model_options, sort_keys=True),
        "input_size": str(size),
        "input": f"float32 (batch, 3, {size}, {size}): RGB resized to {size}x{size}, scaled to [-1, 1] (x / 127.5 - 1)",
        "output": f"float32 logits (batch, 1, {size}, {size}); polyp where sigmoid(logit) >= threshold",
        "normalization": f"{plugin.input.describe()} (the plugin's, applied inside the graph)",
        "threshold": repr(float(threshold)),
        "medico_version": __version__,
        "torch_version": torch.__version__,
        "source": source.name,
        "source_sha256": file_sha256(source),
    }


def real_frames(
    folder: Path | None, checkpoint: Checkpoint, source: Path, *, part: str = "val", count: int = VERIFY_IMAGES
) -> tuple[list[np.ndarray], str]:
    """``count`` frames to check (``part`` 'val': the first by name) or calibrate ('train': spread evenly) an export
    on, and what they are: from ``folder``, else from the run that ``source`` belongs to (its recorded data).

    Raises:
        GraphError: neither gives an image (a checkpoint kept outside its run, data moved): pass a folder.
    """
    option = "--images" if part == "val" else "--calibration"
    if folder is not None:
        paths = _spread(list_images(folder), count, part)
        return [read_rgb(path) for path in paths], f"{len(paths)} images of {folder}"
    try:
        data = run_data(checkpoint, RunFolder.containing(source), source=f"checkpoint {source}")
    except (DataError, OtherDataError) as error:
        message = f"cannot read the run's {part} images ({error}); pass {option} with a few real frames"
        raise GraphError(message) from error
    names = _spread(sorted(data.split.val if part == "val" else data.split.train), count, part)
    if not names:
        raise GraphError(f"checkpoint {source}: its run has no {part} images; pass {option} with a few real frames")
    images = [data.dataset.read_image(name) for name in names]
    return images, f"{len(names)} {part} images of {data.dataset.description}"


def _spread(items: Sequence[Any], count: int, part: str) -> list[Any]:
    """The first ``count`` of ``items``, or for calibration (``part`` 'train') ``count`` spread evenly over them."""
    step = max(1, len(items) // count) if part == "train" else 1
    return list(items[::step][:count])


def mask_agreement(reference: Predictor, other: Predictor, images: Sequence[np.ndarray]) -> np.ndarray:
    """Per image, the Dice between ``other``'s mask and ``reference``'s (1 where both are empty)."""
    dice = []
    for image in images:  # one at a time: a batch axis the export got wrong would show here too
        ours, theirs = reference.masks([image])[0], other.masks([image])[0]
        counts = confusion_counts(torch.from_numpy(theirs), torch.from_numpy(ours))
        dice.append(float(scores_from_counts(counts)["dice"]))
    return np.array(dice)


def export_checkpoint(
    source: Path,
    out: Path,
    format: str,
    images: Sequence[np.ndarray],
    *,
    model: str | None = None,
    threshold: float = THRESHOLD,
    force: bool = False,
    calibration: Sequence[np.ndarray] | None = None,
) -> ExportResult:
    """Export the model of checkpoint ``source`` to ``out`` in ``format``; check it on ``images`` before writing.

    ``model`` is the spec the user trusts to build the checkpoint with (see
    :func:`medico.runs.checkpoint.load_checkpoint`); ``calibration`` frames make an int8 ONNX export.

    Raises:
        GraphError: an unknown format, a model the exporter cannot follow, or an exported model whose masks
            disagree with the eager model's (then nothing is written).
        OutputError: ``out`` is refused (it exists without ``force``, or is not a regular file).
    """
    if format not in FORMATS:
        raise GraphError(f"--format: expected one of {', '.join(FORMATS)}, got {format!r}")
    if not images:
        raise GraphError("no image to check the export on: pass --images with a few real frames")
    if calibration is not None and (format != "onnx" or not calibration):
        raise GraphError("--int8: only for --format onnx, with frames to calibrate on (--calibration)")
    check_target(out, replace=force)  # refused now, not after exporting
    network, checkpoint = load_model(source, model=model)
    metadata = export_metadata(checkpoint, source, threshold)
    size = checkpoint.input_size
    if calibration is not None:
        metadata["quantization"] = f"int8 static (QDQ), calibrated on {len(calibration)} frames; stem, head, gates fp32"
    with atomic_path(out, suffix=SUFFIXES[format], replace=force) as temporary:
        if calibration is not None:
            batches = (normalize(to_tensor([image], size)).numpy() for image in calibration)
            with tempfile.TemporaryDirectory(prefix="medico-export-") as scratch:
                fp32 = write_onnx(network, size, Path(scratch) / "fp32.onnx", metadata)
                exported = load_onnx(write_int8(fp32, temporary, batches, metadata))
        elif format == "onnx":
            exported = load_onnx(write_onnx(network, size, temporary, metadata))
        else:
            write_torchscript(network, size, temporary, metadata)
            with warnings.catch_warnings():  # torch.jit.load is deprecated: this file is the one just written
                warnings.simplefilter("ignore", DeprecationWarning)
                exported = torch.jit.load(str(temporary), map_location="cpu")
        eager = Predictor(network, size, "cpu", "fp32", threshold)  # after exporting: it moves weights to NHWC
        dice = mask_agreement(eager, Predictor(exported, size, "cpu", "fp32", threshold, torch.contiguous_format),
                              images)
        quantised = calibration is not None
        what, value, floor = ("mean", dice.mean(), MIN_DICE_INT8) if quantised else ("least", dice.min(), MIN_DICE)
        if value < floor:
            kind = f"int8 {format}" if quantised else format
            raise GraphError(
                f"the {kind} export of {source} disagrees with the eager model: {what} mask Dice {value:.4f} on "
                f"{len(images)} images, below {floor}; nothing was written"
            )
    return ExportResult(out, format, float(dice.min()), float(dice.mean()), len(images), metadata)
