"""Checkpoints: the model's weights plus everything needed to rebuild it, written atomically, read safely.

A checkpoint is a plain dict of tensors and JSON-like values (so ``torch.load(weights_only=True)`` reads it):
``format``, ``model_spec`` (a plugin name or spec), ``model_options``, ``input_size``, ``model`` (state_dict),
and optional ``config``, ``training`` (optimizer/scheduler/epoch state for resuming) and ``metrics``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medico.errors import MedicoError
from medico.files import atomic_path
from medico.plugins import get_plugin

__all__ = ["FORMAT", "Checkpoint", "CheckpointError", "load_checkpoint", "load_model", "save_checkpoint"]

FORMAT = "medico-checkpoint/1"


class CheckpointError(MedicoError):
    """A checkpoint file is missing, unreadable or not a medico checkpoint."""


@dataclass
class Checkpoint:
    """The contents of a checkpoint file."""

    model_spec: str
    model_options: dict[str, Any]
    input_size: int
    model: dict[str, torch.Tensor]
    config: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def build(self) -> nn.Module:
        """The model with these weights loaded (strictly), in eval mode on the CPU."""
        model = get_plugin(self.model_spec).build(**self.model_options)
        try:
            model.load_state_dict(self.model)
        except RuntimeError as error:
            raise CheckpointError(f"weights do not fit model {self.model_spec!r}: {error}") from error
        return model.eval()


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "model_spec": checkpoint.model_spec,
        "model_options": checkpoint.model_options,
        "input_size": checkpoint.input_size,
        "model": checkpoint.model,
        "config": checkpoint.config,
        "training": checkpoint.training,
        "metrics": checkpoint.metrics,
    }
    with atomic_path(path, replace=True) as tmp, open(tmp, "wb") as handle:
        torch.save(payload, handle)  # a file object: a full disk raises OSError (ENOSPC), not an opaque RuntimeError
    return path


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint with ``weights_only=True``; a clear error names the file when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt, truncated or unsafe files raise various types
        raise CheckpointError(f"cannot read checkpoint {path}: {type(error).__name__}: {error}") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a medico checkpoint (expected format {FORMAT!r})")
    return Checkpoint(
        model_spec=payload["model_spec"],
        model_options=dict(payload.get("model_options") or {}),
        input_size=int(payload["input_size"]),
        model=payload["model"],
        config=dict(payload.get("config") or {}),
        training=dict(payload.get("training") or {}),
        metrics=dict(payload.get("metrics") or {}),
    )


def load_model(path: Path) -> tuple[nn.Module, Checkpoint]:
    """Build the model stored in a checkpoint file; returns the model (eval mode, CPU) and the checkpoint."""
    checkpoint = load_checkpoint(path)
    return checkpoint.build(), checkpoint
