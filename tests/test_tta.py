"""Test-time augmentation and ensembles: each transform undone, averages of known models, errors in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from medico.engine.contract import LogitRanges
from medico.engine.ensemble import Ensemble
from medico.engine.inference import Predictor
from medico.engine.tta import TTA_MODES, mean_probabilities, transforms
from medico.errors import MedicoError


class LeftHalf(nn.Module):
    """A model that is not equivariant: polyp (logit +10) on the left half of its input, background elsewhere."""

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        logits = torch.full((batch.shape[0], 1, *batch.shape[2:]), -10.0)
        logits[..., : batch.shape[-1] // 2] = 10.0
        return logits


class Brightness(nn.Module):
    """An equivariant model: each pixel's logit depends on that pixel only (bright red is polyp)."""

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return batch[:, :1] * 10.0


class Constant(nn.Module):
    """Every pixel at one logit."""

    def __init__(self, logit: float) -> None:
        super().__init__()
        self.logit = logit

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.full((batch.shape[0], 1, *batch.shape[2:]), self.logit)


def _images(count: int = 3, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (40 + 7 * i, 50 - 3 * i, 3), dtype=np.uint8) for i in range(count)]


def _predictor(model: nn.Module, tta: str = "none", size: int = 16) -> Predictor:
    return Predictor(model, size, "cpu", "fp32", tta=tta)


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(1, 9), width=st.integers(1, 9), channels=st.integers(1, 3), mode=st.sampled_from(TTA_MODES)
)
def test_each_transform_is_undone(height: int, width: int, channels: int, mode: str) -> None:
    batch = torch.arange(2 * channels * height * width, dtype=torch.float32).reshape(2, channels, height, width)
    for transform in transforms(mode):
        moved = transform.apply(batch)
        assert torch.equal(transform.undo(moved), batch)
    if height > 1 and width > 1:  # every transform but the identity moves a pixel of distinct values
        assert len({tuple(t.apply(batch).flatten().tolist()) for t in transforms(mode)}) == len(transforms(mode))


def test_flip_is_three_views_and_flip_rot_the_eight_symmetries_of_the_square() -> None:
    square = torch.arange(9.0).reshape(1, 1, 3, 3)
    views = {mode: {tuple(t.apply(square).flatten().tolist()) for t in transforms(mode)} for mode in TTA_MODES}
    assert len(views["none"]) == 1 and len(views["flip"]) == 3 and len(views["flip+rot"]) == 8
    assert views["none"] <= views["flip"] <= views["flip+rot"]


@settings(max_examples=20, deadline=None)
@given(size=st.integers(1, 12), mode=st.sampled_from(TTA_MODES))
def test_the_mean_of_an_equivariant_model_is_its_plain_prediction(size: int, mode: str) -> None:
    batch = torch.randn(2, 3, size, size)
    plain, _ = mean_probabilities(Brightness(), batch, "none")
    augmented, logits = mean_probabilities(Brightness(), batch, mode)
    assert torch.allclose(augmented, plain, atol=1e-6)
    assert len(logits) == len(transforms(mode))


@pytest.mark.parametrize("mode", TTA_MODES)
def test_tta_of_an_equivariant_model_gives_the_same_masks_as_none(mode: str) -> None:
    images = _images()
    expected = _predictor(Brightness()).masks(images)
    for mask, want in zip(_predictor(Brightness(), mode).masks(images), expected):
        assert np.array_equal(mask, want)


def test_tta_averages_a_model_that_is_not_equivariant() -> None:
    images = [np.zeros((16, 16, 3), np.uint8)]
    plain = _predictor(LeftHalf()).small_probabilities(images)[0]
    assert plain[:, :8].min() > 0.99 and plain[:, 8:].max() < 0.01
    flipped = _predictor(LeftHalf(), "flip").small_probabilities(images)[0]
    # identity and vertical flip say left, the horizontal flip says right: 2/3 on the left, 1/3 on the right
    assert np.allclose(flipped[:, :8], 2 / 3, atol=1e-3) and np.allclose(flipped[:, 8:], 1 / 3, atol=1e-3)
    rotated = _predictor(LeftHalf(), "flip+rot").small_probabilities(images)[0]
    # over the 8 symmetries each quadrant is polyp in exactly half of them
    assert np.allclose(rotated, 0.5, atol=1e-3)
    mask = _predictor(LeftHalf(), "flip").masks(images)[0]
    assert mask[:, :8].all() and not mask[:, 8:].any()


def test_logit_ranges_hold_one_row_per_image_over_all_transforms() -> None:
    ranges = LogitRanges()
    _predictor(LeftHalf(), "flip+rot").small_probabilities(_images(3), ranges)
    assert ranges.read().tolist() == [[-10.0, 10.0]] * 3


def test_an_ensemble_of_one_predicts_as_the_single_model() -> None:
    images = _images()
    single = _predictor(Brightness(), "flip")
    assert np.array_equal(Ensemble([single]).small_probabilities(images), single.small_probabilities(images))
    for mine, theirs in zip(Ensemble([single]).masks(images), single.masks(images)):
        assert np.array_equal(mine, theirs)


def test_an_ensemble_of_two_averages_their_probabilities() -> None:
    low, high = _predictor(Constant(-1.0)), _predictor(Constant(2.0))
    expected = (torch.sigmoid(torch.tensor(-1.0)) + torch.sigmoid(torch.tensor(2.0))).item() / 2
    images = _images(2)
    ranges = LogitRanges()
    small = Ensemble([low, high]).small_probabilities(images, ranges)
    assert small.shape == (2, 16, 16) and np.allclose(small, expected)
    assert ranges.read().tolist() == [[-1.0, 2.0]] * 2, "one row per image, over every member"
    for probability, image in zip(Ensemble([low, high]).probabilities(images), images):
        assert probability.shape == image.shape[:2] and np.allclose(probability, expected)


def test_members_of_other_input_sizes_are_averaged_on_the_largest_grid() -> None:
    ensemble = Ensemble([_predictor(LeftHalf(), size=8), _predictor(Constant(10.0), size=32)])
    small = ensemble.small_probabilities([np.zeros((20, 30, 3), np.uint8)])[0]
    assert small.shape == (32, 32)
    assert np.allclose(small[:, :14], 1.0, atol=1e-3) and np.allclose(small[:, 18:], 0.5, atol=1e-3)


def test_an_ensemble_member_with_nan_logits_is_seen() -> None:
    ranges = LogitRanges()
    Ensemble([_predictor(Constant(1.0)), _predictor(Constant(float("nan")))]).small_probabilities(_images(1), ranges)
    assert np.isnan(ranges.read()).all()


def test_bad_settings_are_one_line_errors() -> None:
    with pytest.raises(MedicoError, match=r"^--tta: expected one of none, flip, flip\+rot, got 'rot'$"):
        _predictor(Brightness(), "rot")
    with pytest.raises(MedicoError, match="expected at least one model"):
        Ensemble([])
    with pytest.raises(MedicoError, match="one tta"):
        Ensemble([_predictor(Brightness()), _predictor(Brightness(), "flip")])
