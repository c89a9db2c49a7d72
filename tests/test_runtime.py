"""Device, precision and allocator defaults: fast where the hardware allows, fp32 one option away."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medico.bench import peers
from medico.bench.peers import Contender, compare, matmul_peak_flops
from medico.bench.speed import SpeedResult
from medico.engine.allocator import tune_allocator
from medico.engine.runtime import (
    CPU_CLASSES,
    autocast,
    compile_for_inference,
    cpu_class,
    default_memory_format,
    default_precision,
    device_name,
    resolve_device,
    resolve_precision,
)
from medico.errors import MedicoError


@pytest.mark.parametrize("name", sorted(CPU_CLASSES))
def test_cpu_default_precision_is_bf16_exactly_when_the_class_computes_it_natively(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("MEDICO_CPU_CLASS", name)
    assert default_precision(torch.device("cpu")) == ("bf16" if name == "avx512-bf16" else "fp32")
    assert f"as class {name}" in device_name(torch.device("cpu"))  # a forced class is said wherever the CPU is named


@pytest.mark.parametrize(
    ("amx", "avx512_bf16", "native"), [(True, False, True), (False, True, True), (False, False, False)]
)
def test_without_a_forced_class_the_cpu_is_read_from_the_hardware(
    monkeypatch: pytest.MonkeyPatch, amx: bool, avx512_bf16: bool, native: bool
) -> None:
    """AMX (Sapphire Rapids on) or AVX512-BF16 (EPYC Zen 4) compute bf16; VNNI alone does not."""
    monkeypatch.delenv("MEDICO_CPU_CLASS", raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert cpu_class() == CPU_CLASSES["avx512-bf16" if native else "avx512"]
    assert default_precision(torch.device("cpu")) == ("bf16" if native else "fp32")
    assert "as class" not in device_name(torch.device("cpu"))


def test_an_unknown_forced_cpu_class_names_the_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDICO_CPU_CLASS", "avx1024")
    with pytest.raises(MedicoError, match=r"MEDICO_CPU_CLASS='avx1024': expected one of avx512-bf16, avx512, avx2"):
        default_precision(torch.device("cpu"))


@pytest.mark.parametrize(
    ("capability", "expected"), [((7, 0), "fp16"), ((7, 5), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16")]
)
def test_gpu_default_precision_is_bf16_from_ampere_on_and_fp16_before(
    monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int], expected: str
) -> None:
    """V100 and T4 (7.x) only emulate bf16 (torch.cuda.is_bf16_supported() says yes to them); A100 and H100 do not."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert default_precision(torch.device("cuda")) == expected


def test_an_unknown_precision_names_the_allowed_ones() -> None:
    with pytest.raises(MedicoError, match="fp32, bf16, fp16.*'fp8'"):
        with autocast(torch.device("cpu"), "fp8"):
            pass


@pytest.mark.parametrize("requested", [None, "auto"])
def test_auto_precision_is_the_devices_default_and_a_named_one_is_kept(requested: str | None, cpu_class: str) -> None:
    cpu = torch.device("cpu")
    assert resolve_precision(cpu, requested) == default_precision(cpu)
    assert [resolve_precision(cpu, name) for name in ("fp32", "bf16", "fp16")] == ["fp32", "bf16", "fp16"]
    with pytest.raises(MedicoError, match="auto, fp32, bf16, fp16.*'fp8'"):
        resolve_precision(cpu, "fp8")


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
    from medico.engine.inference import Predictor
    from medico.models import unet

    torch.manual_seed(0)
    model = unet(init_features=4)
    images = [np.random.default_rng(i).integers(0, 256, (40, 56, 3), dtype=np.uint8) for i in range(2)]
    eager = Predictor(model, 32, "cpu", "fp32").probabilities(images)
    compiled = Predictor(model, 32, "cpu", "fp32", compile=True).probabilities(images)
    for a, b in zip(eager, compiled):
        np.testing.assert_allclose(a, b, atol=1e-4)


@pytest.mark.parametrize(("device", "mode"), [("cpu", None), ("cuda", "reduce-overhead")])
def test_compiling_for_inference_captures_cuda_graphs_on_a_gpu_only(
    monkeypatch: pytest.MonkeyPatch, device: str, mode: str | None
) -> None:
    import torch._inductor.config as inductor_config

    asked: dict[str, object] = {}
    monkeypatch.setattr(torch, "compile", lambda model, **options: asked.update(options) or model)
    with inductor_config.patch(freezing=False):
        compile_for_inference(torch.nn.Conv2d(3, 1, 1), torch.device(device))
        assert inductor_config.freezing is True
    assert asked == {"mode": mode}


class _SeesAutotuning(torch.nn.Module):
    """Records whether cuDNN autotuning was on at each forward pass."""

    def __init__(self, seen: list[bool]) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 1)
        self.seen = seen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(torch.backends.cudnn.benchmark)
        return self.conv(x)


def test_cudnn_autotuning_is_on_for_medicos_defaults_and_off_for_the_plain_baseline() -> None:
    medico_seen: list[bool] = []
    plain_seen: list[bool] = []
    rows = [
        Contender("medico", _SeesAutotuning(medico_seen), "fp32", torch.channels_last),
        Contender("plain", _SeesAutotuning(plain_seen), "fp32", torch.contiguous_format, baseline=True),
    ]
    before = torch.backends.cudnn.benchmark
    compare(rows, 8, device=torch.device("cpu"), train_batch_size=2, warmup=0, repeats=1)
    assert medico_seen and set(medico_seen) == {True}
    assert plain_seen and set(plain_seen) == {False}
    assert torch.backends.cudnn.benchmark == before  # restored afterwards


def test_the_matmul_roof_is_the_flops_of_the_timed_products(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def fake_time(device: torch.device, step) -> float:
        step()
        calls.append(1)
        return [0.5, 0.25, 1.0][len(calls) - 1]

    monkeypatch.setattr("medico.bench.peers.time_call", fake_time)
    flops = matmul_peak_flops(torch.device("cpu"), "fp32", size=64, repeats=3)
    assert flops == 2 * 64**3 / 0.5  # one product per timed run on a CPU, the median of the three runs


def test_the_share_of_the_roof_counts_a_training_step_as_three_forward_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peers, "matmul_peak_flops", lambda device, precision: {"fp32": 1e12, "bf16": 4e12}[precision])
    speed = SpeedResult("model", 10.0, 9.0, 11.0, 100.0, 1, 64, "cpu", "bf16", 2, torch.__version__)
    row = peers.ComparisonRow(Contender("ours", torch.nn.Identity(), "bf16", torch.channels_last), speed, None, speed)
    use = peers.roof_use(row, flops=2_000_000_000, device=torch.device("cpu"))
    assert use.roof == {"fp32": 1e12, "bf16": 4e12}
    assert use.achieved == {"inference": 2e10, "training": 6e10}
    assert use.share("training") == pytest.approx(6e10 / 4e12)


@pytest.mark.parametrize(
    ("capability", "inference", "training"),
    [
        ("AVX512", torch.channels_last, torch.channels_last),  # measured faster for both
        ("AVX2", torch.channels_last, torch.contiguous_format),  # NHWC backward measured 0.76-0.87x there
        ("DEFAULT", torch.contiguous_format, torch.contiguous_format),  # never measured: PyTorch's own layout
        ("SVE256", torch.contiguous_format, torch.contiguous_format),
    ],
)
def test_the_default_layout_is_chosen_per_processor_class_and_purpose(
    monkeypatch: pytest.MonkeyPatch, capability: str, inference: torch.memory_format, training: torch.memory_format
) -> None:
    monkeypatch.delenv("MEDICO_CPU_CLASS", raising=False)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    cpu = torch.device("cpu")
    assert default_memory_format(cpu) == inference
    assert default_memory_format(cpu, training=True) == training
    assert default_memory_format(torch.device("cuda"), training=True) == torch.channels_last
