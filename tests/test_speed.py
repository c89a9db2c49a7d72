"""Speed measurement: what is timed, what is recorded, and the FLOP convention."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from medico.bench.speed import (
    FLOP_CONVENTION,
    count_flops,
    measure_end_to_end_speed,
    measure_loader_speed,
    measure_model_speed,
)
from medico.data.cache import DecodedCache
from medico.data.loader import PolypTrainingSet
from medico.data.synthetic import SyntheticDataset
from medico.engine.inference import Predictor
from medico.errors import MedicoError
from medico.models import unet


class CountingModel(nn.Module):
    """A 1x1 convolution that counts its forward calls and the batch sizes it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1)
        self.batches: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(tuple(x.shape))
        return self.conv(x)


def test_model_speed_runs_warmup_then_timed_passes_and_records_the_setting() -> None:
    model = CountingModel()
    result = measure_model_speed(model, 16, device="cpu", batch_size=4, warmup=2, repeats=5)
    assert model.batches == [(4, 3, 16, 16)] * 7
    assert result.kind == "model" and result.batch_size == 4 and result.input_size == 16
    assert result.fps_min <= result.fps <= result.fps_max
    assert result.fps == pytest.approx(4 / (result.latency_ms / 1000))
    assert result.device.startswith("CPU") and result.precision == "fp32"
    assert result.threads == torch.get_num_threads() and result.torch_version == torch.__version__
    assert json.loads(json.dumps(result.as_dict()))["kind"] == "model"


def test_model_speed_runs_without_gradients_and_leaves_the_model_in_eval_mode() -> None:
    model = unet(init_features=4).train()
    measure_model_speed(model, 32, device="cpu", warmup=0, repeats=1, precision="bf16")
    assert not model.training
    assert all(p.grad is None for p in model.parameters())


def test_end_to_end_speed_decodes_every_image_at_batch_one(tmp_path: Path) -> None:
    paths = []
    for index, (height, width) in enumerate([(20, 30), (40, 24)]):
        path = tmp_path / f"{index}.jpg"
        Image.fromarray(np.full((height, width, 3), 200, np.uint8)).save(path)
        paths.append(path)
    model = CountingModel()
    result = measure_end_to_end_speed(Predictor(model, 16), paths, warmup=3, repeats=2)
    assert model.batches == [(1, 3, 16, 16)] * (3 + 2 * 2)
    assert result.kind == "end-to-end" and result.batch_size == 1 and result.input_size == 16
    assert result.fps_min <= result.fps <= result.fps_max


@pytest.mark.parametrize("workers", [0, 1])
def test_data_pipeline_speed_fills_the_cache_then_times_augmented_batches(workspace: Path, workers: int) -> None:
    dataset = SyntheticDataset(seed=0, count=12)
    train_set = PolypTrainingSet(dataset, dataset.names, 16, augment=True)
    result = measure_loader_speed(train_set, batch_size=2, workers=workers, warmup=1, repeats=3)
    assert result.kind == "data pipeline" and result.workers == workers and result.batch_size == 2
    assert result.input_size == 16 and 0 < result.fps_min <= result.fps <= result.fps_max
    assert len(list((workspace / ".cache" / "decoded" / "16").rglob("*.npy"))) == 12  # decoded once, kept
    assert DecodedCache().get(train_set._keys[0], 16) is not None


def test_data_pipeline_speed_needs_enough_batches_to_time(workspace: Path) -> None:
    dataset = SyntheticDataset(seed=0, count=6)
    train_set = PolypTrainingSet(dataset, dataset.names, 16, augment=True)
    expected = r"6 images of synthetic polyps .* make 3 batches of 2; timing needs at least 4"
    with pytest.raises(MedicoError, match=expected):
        measure_loader_speed(train_set, batch_size=2, workers=0, warmup=1, repeats=3)


def test_bad_counts_and_missing_images_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(MedicoError, match="repeats: expected an integer >= 1, got 0"):
        measure_model_speed(CountingModel(), 16, device="cpu", repeats=0)
    with pytest.raises(MedicoError, match="no images"):
        measure_end_to_end_speed(Predictor(CountingModel(), 16), [])


def test_flops_count_a_multiply_add_as_two() -> None:
    conv = nn.Conv2d(3, 4, kernel_size=3, padding=1, bias=False)
    assert count_flops(conv, 8) == 2 * (3 * 3 * 3) * 4 * (8 * 8)
    assert "multiply-add counts as 2" in FLOP_CONVENTION


def test_flops_grow_with_the_input_area_and_leave_the_training_mode_alone() -> None:
    model = unet(init_features=4).train()
    small, large = count_flops(model, 32), count_flops(model, 64)
    assert large == 4 * small
    assert model.training


@pytest.mark.slow
def test_end_to_end_speed_on_real_test_images(medico2020_test_images: Path) -> None:
    paths = sorted(medico2020_test_images.iterdir())[:3]
    result = measure_end_to_end_speed(Predictor(unet(init_features=4), 64), paths, warmup=1)
    assert result.kind == "end-to-end" and result.fps > 0


def test_a_compiled_predictor_pads_the_last_batch_so_the_model_sees_one_shape() -> None:
    """A new batch shape would make a compiled model compile again, for the few images left over."""
    torch.manual_seed(0)
    model = CountingModel()
    images = [np.random.default_rng(i).integers(0, 256, (20 + i, 24, 3), dtype=np.uint8) for i in range(5)]
    eager = list(Predictor(model, 16, "cpu", "fp32").predict_all(images, batch_size=2))
    padded = Predictor(model, 16, "cpu", "fp32")
    padded.compiled = True  # as compile=True leaves it, without waiting for a compilation
    model.batches.clear()
    masks = list(padded.predict_all(images, batch_size=2))
    assert [shape[0] for shape in model.batches] == [2, 2, 2]
    assert len(masks) == 5 and all(np.array_equal(a, b) for a, b in zip(masks, eager))
    assert [m.shape for m in masks] == [image.shape[:2] for image in images]
