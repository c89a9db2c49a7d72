"""Fitting a plugin's model to medico's input convention, so that every caller sees one contract.

medico hands every model a float batch ``(B, 3, H, W)`` in [-1, 1] and wants logits ``(B, 1, H, W)`` back. A plugin
whose model expects another normalisation (ImageNet mean and std, as smp and timm encoders do) or a height and width
that are multiples of some stride (32 for most encoders) declares it (:class:`medico.plugins.InputSpec`), and
:func:`adapt` fits the model once, where the plugin builds it: the input is renormalised on the device the model
runs on and padded (replicating the border) to the multiple, and the logits are cropped back. The model's own
parameters and state_dict keys are unchanged, so weights load as the plugin's own code saved them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medico.plugins import InputSpec

__all__ = ["adapt", "adapt_input"]


def adapt_input(batch: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """A ``[-1, 1]`` batch in ``spec``'s normalisation, padded at the bottom and right to ``spec.multiple``."""
    scale, shift = spec.affine()
    if (scale, shift) != ((1.0,) * 3, (0.0,) * 3):
        weight = batch.new_tensor(scale).view(1, 3, 1, 1)
        bias = batch.new_tensor(shift).view(1, 3, 1, 1)
        batch = torch.addcmul(bias, batch, weight)
    height, width = batch.shape[-2:]
    pad_h, pad_w = -height % spec.multiple, -width % spec.multiple
    if pad_h or pad_w:
        batch = F.pad(batch, (0, pad_w, 0, pad_h), mode="replicate")
    return batch


def adapt(model: nn.Module, spec: InputSpec) -> nn.Module:
    """``model`` itself, its forward fitted to ``spec`` (nothing changes for medico's own convention).

    The model keeps its class's behaviour through a subclass that renormalises and pads the input and crops the
    output back to the input's height and width: parameters, buffers, state_dict keys and ``isinstance`` stay.
    """
    if spec == InputSpec():
        return model
    base = type(model)
    forward = base.forward

    def adapted_forward(self: nn.Module, batch: torch.Tensor, *args: object, **kwargs: object) -> object:
        height, width = batch.shape[-2:]
        output = forward(self, adapt_input(batch, spec), *args, **kwargs)
        if isinstance(output, torch.Tensor) and output.dim() == 4:  # anything else: the contract check says so
            output = output[..., :height, :width]
        return output

    model.__class__ = type(base.__name__, (base,), {"forward": adapted_forward, "__module__": base.__module__})
    return model
