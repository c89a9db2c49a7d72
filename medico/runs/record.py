"""The run record: what a run folder says about the run, so that it can be understood and repeated later.

A run folder (:class:`medico.runs.folder.RunFolder`, which names every file) holds ``config.json`` (the resolved config
and where each value came from), ``environment.json`` (versions, device, threads, git commit), ``dataset.json``
(:class:`medico.runs.dataset.DataRecord`: fingerprint, split name and digest, file lists), ``history.csv`` (one row
per epoch), ``training_curve.png`` (drawn by matplotlib), ``per_image.csv`` and ``metrics.json`` (from
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


_LOSS, _DICE, _IOU = "#c83c28", "#1e6ec8", "#28a050"


def write_training_curve(path: Path, history: Sequence[EpochRecord], title: str = "") -> Path:
    """Draw the training curve as a PNG (matplotlib, loaded only here): training loss above, validation Dice and
    mIoU below, by epoch."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.6, 5.6), dpi=100, layout="constrained")
    loss, scores = figure.subplots(2, 1, sharex=True)
    figure.suptitle(title or "training curve", fontsize=10, parse_math=False)  # a run named a$b$ is no formula
    epochs = [record.epoch for record in history]
    loss.plot(epochs, [record.train_loss for record in history], marker="o", markersize=3, color=_LOSS,
              label="train loss")
    loss.set_ylim(bottom=0)
    scores.plot(epochs, [record.val_dice for record in history], marker="o", markersize=3, color=_DICE,
                label="val Dice")
    scores.plot(epochs, [record.val_iou for record in history], marker="o", markersize=3, color=_IOU, label="val mIoU")
    scores.set_ylim(0, 1)
    scores.set_xlabel("epoch")
    scores.xaxis.get_major_locator().set_params(integer=True)
    for axes in (loss, scores):
        axes.grid(color="#e1e1e1", linewidth=0.6)
        axes.legend(loc="best", frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return write_atomic(path, buffer.getvalue(), replace=True)
