"""Every registered model honours the plugin contract; the U-Net family matches the brain-MRI U-Net layout."""

from __future__ import annotations

import pytest
import torch

from medico.models import AttentionUNet, UNet
from medico.plugins import get_plugin, list_models


def _tiny(name: str) -> torch.nn.Module:
    plugin = get_plugin(name)
    options = {"init_features": 4} if "init_features" in plugin.parameters else {}
    torch.manual_seed(0)
    return plugin.build(**options)


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("size", [(64, 64), (48, 80), (50, 70), (17, 33)])
def test_output_is_one_logit_map_of_the_input_size(name: str, size: tuple[int, int]) -> None:
    """Any height and width works (sizes not divisible by 16 are padded inside and cropped back)."""
    model = _tiny(name).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, *size) * 2 - 1)
    assert out.shape == (2, 1, *size)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list_models())
def test_models_return_logits_not_probabilities(name: str) -> None:
    model = _tiny(name).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 64) * 2 - 1)
    assert (out < 0).any() or (out > 1).any(), "outputs all in [0, 1] look like probabilities"


@pytest.mark.parametrize("name", list_models())
def test_every_parameter_gets_a_gradient(name: str) -> None:
    model = _tiny(name).train()
    model(torch.rand(2, 3, 32, 32) * 2 - 1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum())]
    assert missing == []


def _brain_mri_keys() -> set[str]:
    """The state_dict keys of mateuszbuda/brain-segmentation-pytorch's UNet, written out independently."""
    blocks = {f"encoder{i}": f"enc{i}" for i in range(1, 5)} | {f"decoder{i}": f"dec{i}" for i in range(1, 5)}
    blocks["bottleneck"] = "bottleneck"
    keys = set()
    for module, prefix in blocks.items():
        for n in (1, 2):
            keys.add(f"{module}.{prefix}conv{n}.weight")
            for stat in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                keys.add(f"{module}.{prefix}norm{n}.{stat}")
    for i in range(1, 5):
        keys |= {f"upconv{i}.weight", f"upconv{i}.bias"}
    return keys | {"conv.weight", "conv.bias"}


def test_unet_keys_are_exactly_the_brain_mri_unets() -> None:
    assert set(UNet().state_dict()) == _brain_mri_keys()


def test_unet_has_the_brain_mri_parameter_count() -> None:
    assert sum(p.numel() for p in UNet().parameters()) == 7_763_041


def test_unet_convolutions_have_no_bias_and_are_3x3() -> None:
    conv = UNet().encoder1.enc1conv1
    assert conv.bias is None and conv.kernel_size == (3, 3)


def test_attention_unet_adds_only_gates_to_the_unet_keys() -> None:
    extra = set(AttentionUNet().state_dict()) - _brain_mri_keys()
    assert extra and all(key.startswith("gates.") for key in extra)
    assert _brain_mri_keys() <= set(AttentionUNet().state_dict())


def test_attention_gate_weights_the_skip_by_a_map_in_zero_one() -> None:
    gate = AttentionUNet(init_features=4).gates["1"]
    skip, signal = torch.rand(1, 4, 8, 8), torch.rand(1, 4, 8, 8)
    alpha = gate.attention(skip, signal)
    assert alpha.shape == (1, 1, 8, 8) and ((alpha > 0) & (alpha < 1)).all()
    torch.testing.assert_close(gate(skip, signal), skip * alpha)
