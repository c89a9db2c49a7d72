"""The run record: what a run folder says about the run, so that it can be understood and repeated later.

A run folder (:class:`medico.runs.folder.RunFolder`, which names every file) holds ``config.json`` (the resolved config
and where each value came from), ``environment.json`` (versions, device, threads, git commit), ``dataset.json``
(:class:`medico.runs.dataset.DataRecord`: fingerprint, split name and digest, file lists), ``history.csv`` (one row
per epoch), ``training_curve.png``, ``per_image.csv`` and ``metrics.json`` (from
:meth:`medico.engine.result.EvaluationResult.write`) and ``summary.json`` (best scores, metric policy, FPS block).
Every file is written atomically.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

import medico
from medico.engine.runtime import cpu_class, device_name
from medico.engine.training import EpochRecord
from medico.files import write_atomic
from medico.plugins import get_plugin

__all__ = [
    "HISTORY_COLUMNS",
    "environment_info",
    "git_commit",
    "read_json",
    "write_history",
    "write_json",
    "write_training_curve",
]

HISTORY_COLUMNS = tuple(f.name for f in dataclasses.fields(EpochRecord))


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    return write_atomic(path, json.dumps(data, indent=2, default=str) + "\n", replace=True)


def read_json(path: Path) -> Any:
    """Read a JSON file of the record."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def git_commit(folder: Path | None = None) -> dict[str, Any] | None:
    """The commit and dirtiness of the git checkout holding ``folder`` (medico's own by default); None outside git."""
    folder = Path(folder or Path(medico.__file__).resolve().parent)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=folder, capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


def environment_info(device: torch.device, precision: str, model: str) -> dict[str, Any]:
    """Versions, platform, device and precision, and where ``model``'s plugin code comes from: what a number
    measured in this run depends on."""
    return {
        "plugin": get_plugin(model).provenance(),
        "medico": medico.__version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "device_name": device_name(device),
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
        "threads": torch.get_num_threads(),
        "cpu_class": dataclasses.asdict(cpu_class()),  # what the CPU's precision and layout defaults were chosen by
        "precision": precision,
        "git": git_commit(),
        "command": sys.argv,
    }


def write_history(path: Path, history: Sequence[EpochRecord]) -> Path:
    """Write the per-epoch history as CSV (columns :data:`HISTORY_COLUMNS`), atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in history:
        writer.writerow(dataclasses.asdict(record))
    return write_atomic(path, buffer.getvalue(), replace=True)


_WIDTH, _PANEL, _MARGIN = 760, 260, 56
_LOSS, _DICE, _IOU, _AXIS, _GRID = (200, 60, 40), (30, 110, 200), (40, 160, 80), (60, 60, 60), (225, 225, 225)


def write_training_curve(path: Path, history: Sequence[EpochRecord], title: str = "") -> Path:
    """Draw the training curve as a PNG (PIL only): training loss above, validation Dice and mIoU below."""
    image = Image.new("RGB", (_WIDTH, 2 * _PANEL + 40), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    draw.text((_MARGIN, 8), title or "training curve", fill=_AXIS, font=font)
    epochs = [r.epoch for r in history]
    losses = [r.train_loss for r in history]
    top = max(losses, default=1.0) * 1.05 or 1.0
    _panel(draw, font, 30, epochs, [("train loss", losses, _LOSS)], (0.0, top))
    scores = [("val Dice", [r.val_dice for r in history], _DICE), ("val mIoU", [r.val_iou for r in history], _IOU)]
    _panel(draw, font, 30 + _PANEL, epochs, scores, (0.0, 1.0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return write_atomic(path, buffer.getvalue(), replace=True)


def _panel(
    draw: ImageDraw.ImageDraw,
    font: ImageFont.ImageFont,
    y0: int,
    epochs: Sequence[int],
    series: Sequence[tuple[str, Sequence[float], tuple[int, int, int]]],
    y_range: tuple[float, float],
) -> None:
    """One chart: axes, five grid lines with labels, epoch ticks, a line per series and its legend."""
    left, right, top, bottom = _MARGIN, _WIDTH - 20, y0 + 10, y0 + _PANEL - 40
    low, high = y_range
    first, last = (epochs[0], epochs[-1]) if epochs else (1, 1)
    span = max(last - first, 1)

    def xy(epoch: float, value: float) -> tuple[float, float]:
        x = left + (epoch - first) / span * (right - left)
        y = bottom - (value - low) / (high - low or 1.0) * (bottom - top)
        return x, y

    for i in range(5):
        value = low + (high - low) * i / 4
        _, y = xy(first, value)
        draw.line([(left, y), (right, y)], fill=_GRID)
        draw.text((6, y - 6), f"{value:.2f}", fill=_AXIS, font=font)
    draw.line([(left, top), (left, bottom), (right, bottom)], fill=_AXIS)
    step = max(1, round(span / 10))
    for epoch in range(first, last + 1, step):
        x, _ = xy(epoch, low)
        draw.line([(x, bottom), (x, bottom + 4)], fill=_AXIS)
        draw.text((x - 4, bottom + 6), str(epoch), fill=_AXIS, font=font)
    draw.text((right - 40, bottom + 18), "epoch", fill=_AXIS, font=font)
    for index, (label, values, colour) in enumerate(series):
        points = [xy(e, v) for e, v in zip(epochs, values)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse([(x - 2, y - 2), (x + 2, y + 2)], fill=colour)
        lx = left + 10 + index * 110
        draw.line([(lx, top + 8), (lx + 18, top + 8)], fill=colour, width=3)
        draw.text((lx + 22, top + 2), label, fill=_AXIS, font=font)
