"""Checkpoints: the model's weights plus everything needed to rebuild it, written atomically, read safely.

A checkpoint is a plain dict of tensors and JSON-like values (so ``torch.load(weights_only=True)`` reads it, through
:func:`medico.weights.load_weights_only`, which also keeps a small file from asking for gigabytes):
``format``, ``model_spec`` (a plugin name or spec), ``model_options``, ``input_size``, ``model`` (state_dict),
and optional ``config``, ``training`` (optimizer/scheduler/epoch state for resuming) and ``metrics``.

A checkpoint is data and never chooses code: :func:`load_checkpoint` is the one gate a file passes. It checks
every field, and lets a file name only a registered plugin; a file or module spec runs only when the user
passes it (``model=``, ``--model`` on the command line), which is their trust in that code.
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medico.errors import MedicoError, some
from medico.files import atomic_path
from medico.plugins import canonical_spec, get_plugin, is_model
from medico.runs.config import MAX_INPUT_SIZE, ConfigError, check_stored_types
from medico.weights import load_weights_only

__all__ = [
    "FORMAT",
    "Checkpoint",
    "CheckpointError",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
]

FORMAT = "medico-checkpoint/1"

_shown = reprlib.Repr()
_shown.maxstring = _shown.maxother = 300  # values a file holds, quoted in messages: paths whole, length bounded


class CheckpointError(MedicoError):
    """A checkpoint file is missing, unreadable, not a medico checkpoint, or names code the user did not choose."""


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

    def check_shapes(self) -> None:
        """Refuse weights whose names or shapes differ from the model that spec and options build.

        The model is built on the meta device (no memory) for the comparison, so that options can never make
        medico allocate far more than the file holds. A builder that cannot run there is left to the strict load.
        """
        plugin = get_plugin(self.model_spec)
        try:
            with torch.device("meta"):
                skeleton = plugin.build(**self.model_options)
        except Exception:  # the real build below reports a builder's own errors, with the plugin's name
            return
        expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
        found = {k: tuple(v.shape) for k, v in self.model.items()}
        problems = [
            f"{len(keys)} {what} ({some(keys)})"
            for what, keys in (
                ("missing", sorted(expected.keys() - found.keys())),
                ("unexpected", sorted(found.keys() - expected.keys())),
                ("of another shape", sorted(k for k in expected.keys() & found.keys() if expected[k] != found[k])),
            )
            if keys
        ]
        if problems:
            raise CheckpointError(
                f"weights do not fit model {self.model_spec!r} with options {self.model_options}: tensors "
                + "; ".join(problems)
            )

    def build(self) -> nn.Module:
        """The model with these weights loaded (strictly), in eval mode on the CPU."""
        self.check_shapes()
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


def load_checkpoint(path: Path, *, model: str | None = None) -> Checkpoint:
    """Read a checkpoint with ``weights_only=True`` and check every field: the gate each checkpoint file passes.

    Args:
        path: the checkpoint file.
        model: the model spec the user trusts to build it with (``--model``); it replaces the stored one. Without
            it the stored spec must name a registered plugin (built-in or installed), never a file or module.

    Raises:
        CheckpointError: the file is missing or unreadable, a field is malformed, or its spec is refused; the
            message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = load_weights_only(path)
    except Exception as error:  # corrupt, truncated, unsafe or inflating files raise various types
        raise CheckpointError(f"cannot read checkpoint {path}: {type(error).__name__}: {error}") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a medico checkpoint (expected format {FORMAT!r})")
    checkpoint = _checked(path, payload)
    if model is not None:
        return replace(checkpoint, model_spec=canonical_spec(model))
    if not is_model(checkpoint.model_spec):
        raise CheckpointError(
            f"checkpoint {path} names model {checkpoint.model_spec!r}, which is not a registered plugin (see "
            "`medico models`); a checkpoint may name only those, as a file or module spec would run code you never "
            f"chose. If you trust that code, pass the spec yourself: --model {checkpoint.model_spec!r}"
        )
    return checkpoint


def _checked(path: Path, payload: dict[str, Any]) -> Checkpoint:
    """The checkpoint's fields, each of the type and range expected, or an error naming the file and the field."""

    def refuse(name: str, expected: str) -> CheckpointError:
        found = payload.get(name)
        return CheckpointError(f"checkpoint {path}: {name} must be {expected}, found {_shown.repr(found)}")

    spec = payload.get("model_spec")
    if not isinstance(spec, str) or not 0 < len(spec) <= 4096:
        raise refuse("model_spec", "a model name or spec (at most 4096 characters)")
    size = payload.get("input_size")
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_INPUT_SIZE:
        raise refuse("input_size", f"an integer from 1 to {MAX_INPUT_SIZE}")
    weights = payload.get("model")
    if not _is_str_dict(weights) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise refuse("model", "a state_dict (names to tensors)")
    fields = {}
    for name in ("model_options", "config", "training", "metrics"):
        value = payload.get(name) if payload.get(name) is not None else {}
        if not _is_str_dict(value):
            raise refuse(name, "a dict with text keys")
        if name != "training" and not _is_plain(value):  # settings and scores are JSON values; tensors train only
            raise refuse(name, "a dict of plain values (text, numbers, booleans, lists and dicts of them)")
        fields[name] = value
    options = fields["model_options"]
    # `--resume` trains what the config names: one checkpoint, one model, so the spec vetted below is what trains
    config = fields["config"]
    try:
        check_stored_types(config, f"checkpoint {path}: config")
    except ConfigError as error:
        raise CheckpointError(str(error)) from error
    stated = (("model", spec), ("options", options))
    if not all(key not in config or config[key] == value for key, value in stated):
        raise CheckpointError(
            f"checkpoint {path}: its config trains {_shown.repr(config.get('model'))} with options "
            f"{_shown.repr(config.get('options'))}, but its model_spec is {spec!r} with {_shown.repr(options)}"
        )
    return Checkpoint(spec, input_size=size, model=weights, **fields)


def _is_str_dict(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) for k in value)


def _is_plain(value: Any) -> bool:
    """Whether ``value`` holds only what JSON holds (no tensor, whose truth value or text may raise where read)."""
    pending = [value]
    while pending:  # a loop, not recursion: nesting as deep as a file likes cannot overflow the stack
        item = pending.pop()
        if isinstance(item, dict):
            if not all(isinstance(k, str) for k in item):
                return False
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
        elif item is not None and not isinstance(item, str | int | float | bool):
            return False
    return True


def load_model(path: Path, *, model: str | None = None) -> tuple[nn.Module, Checkpoint]:
    """Build the model stored in a checkpoint file; returns the model (eval mode, CPU) and the checkpoint.

    ``model`` is the spec the user trusts to build it with, as in :func:`load_checkpoint`.
    """
    checkpoint = load_checkpoint(path, model=model)
    return checkpoint.build(), checkpoint
