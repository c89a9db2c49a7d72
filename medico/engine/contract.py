"""The model contract: a float batch ``(B, 3, H, W)`` in [-1, 1] in, one float tensor of logits ``(B, 1, H, W)`` out,
finite, with no sigmoid inside (medico applies it, once, where logits become probabilities).

This module alone decides whether a model keeps it, for every caller:

- :func:`check_output`: the output's form (a tensor, floating point, the batch's size, height and width), asked on
  every forward pass of training and inference; it reads shapes only, so it never waits for a GPU.
- :func:`probe_model`: two small forward passes (training and evaluation mode, on the CPU) before a run starts or a
  model is timed: the form, finite values, and no sigmoid or softmax as the last operation.
- :class:`LogitRanges` and :func:`check_logit_ranges`: what an evaluation's logits were, read once at its end:
  NaN or infinite logits name their images; outputs squeezed into [0, 1] betray a sigmoid the probe could not see.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from medico.errors import describe_error, some
from medico.plugins import PluginError, get_plugin

__all__ = [
    "CONTRACT",
    "PROBE_SIZE",
    "SIGMOID_SPREAD",
    "ContractError",
    "LogitRanges",
    "check_logit_ranges",
    "check_output",
    "check_plugin",
    "probe_model",
    "probe_size",
]

CONTRACT = "logits (B, 1, H, W) for a (B, 3, H, W) batch: one float tensor, no sigmoid inside"
"""The contract in the words every message about it uses."""

PROBE_SIZE = 64
"""The probe's side for inputs of at least this size (plus their remainder modulo it): a few ms on a CPU."""

SIGMOID_SPREAD = 0.5
"""How much of [0, 1] an evaluation's outputs must cover, all inside it, to betray a sigmoid inside: a trained
model squashed by one pushes background towards 0 and polyps towards 1, while a barely trained one without it
keeps every logit near its bias (after one epoch on the synthetic set: all in [0.002, 0.02])."""

_LAST_OPERATIONS_KEEPING_RANGE = (
    "Alias", "AsStrided", "Clone", "Expand", "Permute", "Select", "Slice", "Squeeze", "ToCopy", "Transpose",
    "Unsqueeze", "UnsafeView", "UpsampleBilinear", "UpsampleNearest", "View",
)
_SQUASHING_OPERATIONS = ("Sigmoid", "Hardsigmoid", "Softmax")


class ContractError(PluginError):
    """A model's output breaks the contract: not one float tensor of the batch's shape, not finite, or squashed."""


def check_output(output: object, batch: torch.Tensor, model: str = "the model") -> torch.Tensor:
    """``output`` if it has the contract's form for ``batch``, else a ContractError saying what was found.

    Args:
        output: what the model returned for ``batch``.
        batch: the ``(B, 3, H, W)`` input.
        model: how messages name the model.
    """
    if not isinstance(output, torch.Tensor):
        found = type(output).__name__
        if isinstance(output, tuple | list | dict):
            found = f"a {found} of {len(output)}"
        raise ContractError(f"{model} returned {found}; expected {CONTRACT}")
    if not output.is_floating_point():
        raise ContractError(f"{model} returned a tensor of {output.dtype}; expected {CONTRACT}")
    expected = (batch.shape[0], 1, *batch.shape[2:])
    if tuple(output.shape) != expected:
        raise ContractError(
            f"{model} returned shape {tuple(output.shape)} for a batch of shape {tuple(batch.shape)}, expected "
            f"{expected}: {CONTRACT}"
        )
    return output


def probe_size(input_size: int) -> int:
    """The probe's side for a model trained at ``input_size``: the size itself up to :data:`PROBE_SIZE`, above it
    ``PROBE_SIZE`` plus the size's remainder modulo ``PROBE_SIZE``, so that a model needing sides divisible by 8, 16,
    32 or 64 fails the probe exactly when it would fail at ``input_size`` (72 probes at 72, 256 at 64)."""
    return input_size if input_size <= PROBE_SIZE else PROBE_SIZE + input_size % PROBE_SIZE


def probe_model(model: nn.Module, input_size: int, label: str) -> nn.Module:
    """``model`` after two forward passes of two images (training, then evaluation mode) keep the contract.

    The images are :func:`probe_size` pixels square, seeded noise in [-1, 1], on the model's device (the CPU, for a
    model just built); its weights do not change (batch-norm statistics of a training-mode pass may). ``label`` names
    the model in messages.

    Raises:
        ContractError: a pass raised, or its output has the wrong form, is not finite, carries no gradient in
            training mode, or ends in a sigmoid.
    """
    size = probe_size(input_size)
    batch = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    batch = batch.to(next(model.parameters(), batch).device)
    was_training = model.training
    try:
        for training in (True, False):
            model.train(training)
            with torch.enable_grad():  # the autograd graph shows the output's last operation
                try:  # (an input that is no leaf of the graph, so that a model may change it in place)
                    output = model(batch.clone().requires_grad_(True).clone())
                except Exception as error:  # a plugin's forward may raise anything: report it, with the contract
                    raise ContractError(
                        f"{label}: a forward pass of a {tuple(batch.shape)} batch raised {describe_error(error)}; "
                        f"expected {CONTRACT}"
                    ) from error
            output = check_output(output, batch, label)
            if training and not output.requires_grad:
                raise ContractError(
                    f"{label}: the output carries no gradient in training mode (detached, or computed under "
                    f"no_grad), so training could not change the model; expected {CONTRACT}"
                )
            squash = _squashing_operation(output)
            if squash is not None:
                raise ContractError(
                    f"{label}: the output comes out of {squash}, so it holds probabilities, not logits; expected "
                    f"{CONTRACT} (medico applies the sigmoid itself)"
                )
            if not bool(torch.isfinite(output).all()):
                raise ContractError(
                    f"{label}: the output of a {tuple(batch.shape)} batch of noise in [-1, 1] is NaN or infinite "
                    f"({'training' if training else 'evaluation'} mode); expected finite {CONTRACT}"
                )
    finally:
        model.train(was_training)
    return model


def _squashing_operation(output: torch.Tensor) -> str | None:
    """The sigmoid or softmax that produced ``output`` through operations keeping its range, if one did."""
    node = output.grad_fn
    while node is not None:
        name = node.name()
        if name.startswith(_SQUASHING_OPERATIONS):
            return name.removesuffix("Backward0").removesuffix("Backward1").lower()
        if not name.startswith(_LAST_OPERATIONS_KEEPING_RANGE) or not node.next_functions:
            return None
        node = node.next_functions[0][0]
    return None


class LogitRanges:
    """Each scored image's lowest and highest logit, kept on the device and read back once, at the end."""

    def __init__(self) -> None:
        self._parts: list[torch.Tensor] = []

    def add(self, logits: torch.Tensor) -> None:
        """Record a ``(B, 1, H, W)`` batch of logits (two reductions on its device, no wait for it)."""
        low, high = logits.flatten(1).aminmax(dim=1)
        self._parts.append(torch.stack((low, high), dim=1))

    def add_bounds(self, bounds: torch.Tensor) -> None:
        """Record ``(B, 2)`` lowest and highest logits already found per image (an ensemble's, over its members)."""
        self._parts.append(bounds)

    def read(self) -> np.ndarray:
        """``(N, 2)`` lowest and highest logit per image, in the order added (the one wait for the device)."""
        if not self._parts:
            return np.zeros((0, 2))
        return torch.cat(self._parts).float().cpu().numpy()


def check_logit_ranges(names: Sequence[str], ranges: np.ndarray) -> None:
    """Stop an evaluation whose logits are NaN or infinite (naming the images), or squashed into [0, 1].

    Args:
        names: the scored images.
        ranges: ``(N, 2)`` lowest and highest logit per image, from :meth:`LogitRanges.read`.

    Raises:
        ContractError: the evaluation's scores would not be those of a valid model.
    """
    broken = [name for name, (low, high) in zip(names, ranges) if not (np.isfinite(low) and np.isfinite(high))]
    if broken:
        raise ContractError(
            f"the model's logits are NaN or infinite on {len(broken)} of {len(names)} images ({some(broken, 5)}); "
            f"scores from them would not be valid. Expected finite {CONTRACT}"
        )
    if len(ranges) == 0:
        return
    low, high = float(ranges[:, 0].min()), float(ranges[:, 1].max())
    if 0.0 <= low and high <= 1.0 and high - low >= SIGMOID_SPREAD:
        raise ContractError(
            f"the model's outputs on all {len(names)} images lie in [0, 1] (from {low:.3f} to {high:.3f}): it applies "
            f"a sigmoid itself, so every pixel scores as polyp. Expected {CONTRACT}"
        )


def check_plugin(name_or_spec: str, input_size: int | None = None) -> str:
    """``medico models --check``: build the plugin with its default options on the CPU and probe it at
    ``input_size`` (default: its own); one line saying what it is when it keeps the contract.

    Raises:
        PluginError: the plugin cannot be found, imported or built.
        ContractError: the model breaks the contract (the message says how).
    """
    plugin = get_plugin(name_or_spec)
    size = input_size or plugin.defaults.input_size
    label = f"model {plugin.name!r} ({plugin.origin})"
    model = probe_model(plugin.build(), size, label)
    parameters = sum(p.numel() for p in model.parameters())
    return (
        f"{label} keeps the contract at {size}x{size} (probed at {probe_size(size)}x{probe_size(size)}): "
        f"{CONTRACT}; {parameters:,} parameters; input {plugin.input.describe()}"
    )
