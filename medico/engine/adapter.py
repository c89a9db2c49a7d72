"""Fitting a plugin's model to medico's input convention, so that every caller sees one contract.

medico hands every model a float batch ``(B, 3, H, W)`` in [-1, 1] and wants logits ``(B, 1, H, W)`` back. A plugin
whose model expects another normalisation (ImageNet mean and std, as smp and timm encoders do) or a height and width
that are multiples of some stride (32 for most encoders) declares it (:class:`medico.plugins.InputSpec`), and
:func:`adapt` fits the model once, where the plugin builds it: the input is renormalised on the device the model
runs on and padded (replicating the border) to the multiple, and the logits are cropped back. The model's own
parameters and state_dict keys are unchanged, so weights load as the plugin's own code saved them.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from medico.plugins import InputSpec, PluginError

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


def adapt(model: nn.Module, spec: InputSpec, label: str = "the model") -> nn.Module:
    """``model`` itself, its forward fitted to ``spec`` (nothing changes for medico's own convention).

    The model keeps its class's behaviour through a subclass that renormalises and pads the input and crops the
    output back to the input's height and width: parameters, buffers, state_dict keys and ``isinstance`` stay, and it
    pickles and deep-copies as the adapted model it is. ``label`` names the model in messages.

    Raises:
        PluginError: ``model`` runs another forward than its class's (a TorchScript module, ``torch.compile``'s
            wrapper, a forward set on the instance), which the subclass could not fit.
    """
    if spec == InputSpec():
        return model
    if isinstance(model, torch.jit.ScriptModule) or "forward" in vars(model):
        raise PluginError(
            f"{label} ({type(model).__name__}) runs a forward of its own "
            f"({'TorchScript' if isinstance(model, torch.jit.ScriptModule) else 'set on the instance'}), which medico "
            f"cannot fit to the input its plugin declares ({spec.describe()}): return the plain eager module "
            "(medico compiles it itself where asked)"
        )
    model.__class__ = _adapted_class(type(model), spec)
    return model


@functools.cache
def _adapted_class(base: type[nn.Module], spec: InputSpec) -> type[nn.Module]:
    """``base`` whose forward renormalises and pads its input to ``spec`` and crops the output back."""
    forward = base.forward

    def adapted_forward(self: nn.Module, batch: torch.Tensor, *args: object, **kwargs: object) -> object:
        height, width = batch.shape[-2:]
        output = forward(self, adapt_input(batch, spec), *args, **kwargs)
        if isinstance(output, torch.Tensor) and output.dim() == 4:  # anything else: the contract check says so
            output = output[..., :height, :width]
        return output

    def __reduce_ex__(self: nn.Module, protocol: int) -> tuple[object, ...]:  # noqa: N807
        return _adapted_instance, (base, spec), self.__getstate__()  # a class made here has no name to pickle by

    namespace = {"forward": adapted_forward, "__reduce_ex__": __reduce_ex__, "__module__": base.__module__}
    return type(base.__name__, (base,), namespace)


def _adapted_instance(base: type[nn.Module], spec: InputSpec) -> nn.Module:
    """An empty instance of ``base`` fitted to ``spec``, which unpickling and deep copies fill."""
    return object.__new__(_adapted_class(base, spec))
