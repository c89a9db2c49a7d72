"""The model contract (medico.engine.contract): what every registered model passes, and what must not be refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from medico.engine.contract import ContractError, check_logit_ranges, probe_model
from medico.plugins import get_plugin, list_models


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_keeps_the_contract(name: str) -> None:
    plugin = get_plugin(name)
    model = plugin.build(init_features=4) if "init_features" in plugin.parameters else plugin.build()
    probe_model(model, 256, name)
    assert model.training  # the probe leaves the mode as it found it


class ClampsItsInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x.clamp_(-0.5, 0.5)
        return self.conv(x)


def test_a_model_changing_its_input_in_place_passes_the_probe() -> None:
    probe_model(ClampsItsInput(), 32, "clamps")


def test_a_barely_trained_model_whose_logits_all_sit_near_its_bias_is_not_taken_for_a_sigmoid() -> None:
    """After one epoch on the synthetic set a U-Net's logits all lay in [0.002, 0.02]: a valid, if poor, run."""
    check_logit_ranges(["a", "b"], np.array([[0.002, 0.015], [0.004, 0.02]]))


def test_outputs_spread_over_zero_to_one_are_taken_for_a_sigmoid_and_nan_names_the_image() -> None:
    with pytest.raises(ContractError, match=r"lie in \[0, 1\]"):
        check_logit_ranges(["a", "b"], np.array([[0.01, 0.4], [0.2, 0.97]]))
    with pytest.raises(ContractError, match=r"NaN or infinite on 1 of 2 images \(b\)"):
        check_logit_ranges(["a", "b"], np.array([[-3.0, 2.0], [np.nan, 1.0]]))
