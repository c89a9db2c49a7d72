"""Device, precision and allocator defaults: fast where the hardware allows, fp32 one option away."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medico.errors import MedicoError
from medico.runtime import autocast, cpu_has_native_bf16, default_precision, resolve_device, tune_allocator


def test_cpu_default_precision_is_bf16_exactly_when_the_cpu_computes_it_natively() -> None:
    assert default_precision(torch.device("cpu")) == ("bf16" if cpu_has_native_bf16() else "fp32")


def test_an_unknown_precision_names_the_allowed_ones() -> None:
    with pytest.raises(MedicoError, match="fp32, bf16, fp16.*'fp8'"):
        with autocast(torch.device("cpu"), "fp8"):
            pass


def test_bf16_autocast_computes_convolutions_in_bf16_and_fp32_does_not() -> None:
    conv = torch.nn.Conv2d(3, 2, 3)
    x = torch.rand(1, 3, 8, 8)
    with autocast(torch.device("cpu"), "bf16"):
        assert conv(x).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "fp32"):
        assert conv(x).dtype == torch.float32


def test_a_missing_cuda_device_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(MedicoError, match="CUDA is not available"):
        resolve_device("cuda")


def test_allocator_tuning_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDICO_NO_ALLOCATOR_TUNING", "1")
    assert tune_allocator() is False


@pytest.mark.slow
def test_a_model_compiled_for_inference_predicts_the_same_masks() -> None:
    from medico.inference import Predictor
    from medico.models import unet

    torch.manual_seed(0)
    model = unet(init_features=4)
    images = [np.random.default_rng(i).integers(0, 256, (40, 56, 3), dtype=np.uint8) for i in range(2)]
    eager = Predictor(model, 32, "cpu", "fp32").probabilities(images)
    compiled = Predictor(model, 32, "cpu", "fp32", compile=True).probabilities(images)
    for a, b in zip(eager, compiled):
        np.testing.assert_allclose(a, b, atol=1e-4)
