"""Evaluation at the original resolution: per-image rows, mean and std, the policy, the files written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from medico.data import open_dataset, resolve_split
from medico.engine.evaluation import EvaluationError, evaluate
from medico.engine.inference import Predictor
from medico.engine.result import EvaluationResult
from medico.metrics import METRIC_NAMES, METRIC_POLICY
from medico.models import unet


class RedIsPolyp(nn.Module):
    """Logits that say 'polyp' where the red channel is bright (input normalised to [-1, 1])."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1] * 20


class FakeDataset:
    """Images whose red square is the predicted polyp, with ground truths chosen by the test."""

    def __init__(self, images: dict[str, np.ndarray], masks: dict[str, np.ndarray]) -> None:
        self.images, self.masks = images, masks

    def read_image(self, name: str) -> np.ndarray:
        return self.images[name]

    def read_mask(self, name: str) -> np.ndarray:
        return self.masks[name]


def red_square(height: int, width: int, top: int, left: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    image = np.zeros((height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), dtype=bool)
    mask[top : top + side, left : left + side] = True
    image[mask] = (255, 0, 0)
    return image, mask


@pytest.fixture
def predictor() -> Predictor:
    return Predictor(RedIsPolyp(), input_size=32)


def test_a_perfect_prediction_scores_one_on_every_metric(predictor: Predictor) -> None:
    image, mask = red_square(32, 32, 8, 4, 16)
    result = evaluate(predictor, FakeDataset({"a": image}, {"a": mask}), ["a"])
    row = result.per_image.iloc[0]
    assert row["tp"] == mask.sum() and row["fp"] == row["fn"] == 0
    assert row["tn"] == mask.size - mask.sum()
    assert all(result.summary[m] == 1.0 for m in METRIC_NAMES)


def test_scores_are_counted_at_the_original_resolution(predictor: Predictor) -> None:
    image, mask = red_square(64, 96, 16, 24, 32)  # not square, larger than the model's input size
    result = evaluate(predictor, FakeDataset({"a": image}, {"a": mask}), ["a"])
    row = result.per_image.iloc[0]
    assert (row["height"], row["width"]) == (64, 96)
    assert row[["tp", "fp", "fn", "tn"]].sum() == 64 * 96
    assert row["dice"] > 0.95  # only the outline's pixels can differ after resizing back


def test_scores_are_per_image_then_averaged_with_population_std(predictor: Predictor) -> None:
    perfect_image, perfect_mask = red_square(32, 32, 8, 8, 16)
    # the prediction covers two thirds of the truth: Dice 2*256/(2*256+128) = 0.8, IoU 256/384 = 2/3
    half_image, half_truth = red_square(32, 32, 8, 8, 16)
    half_truth[8:24, 24:32] = True
    missed_image = np.zeros((40, 48, 3), dtype=np.uint8)
    missed_truth = np.zeros((40, 48), dtype=bool)
    missed_truth[10:20, 10:20] = True
    dataset = FakeDataset(
        {"perfect": perfect_image, "half": half_image, "missed": missed_image},
        {"perfect": perfect_mask, "half": half_truth, "missed": missed_truth},
    )
    result = evaluate(predictor, dataset, ["perfect", "half", "missed"], batch_size=2)
    frame = result.per_image.set_index("name")
    assert frame.loc["half", "dice"] == pytest.approx(0.8)
    assert frame.loc["half", "iou"] == pytest.approx(2 / 3)
    assert frame.loc["missed", "dice"] == 0 and frame.loc["missed", "precision"] == 0
    assert result.summary["dice"] == pytest.approx((1 + 0.8 + 0) / 3)
    assert result.summary["iou_std"] == pytest.approx(np.std([1, 2 / 3, 0]))
    assert result.summary["n_images"] == 3
    assert list(result.per_image["name"]) == ["perfect", "half", "missed"]


def test_empty_truth_and_empty_prediction_scores_one_under_the_policy(predictor: Predictor) -> None:
    blank = np.zeros((32, 32, 3), dtype=np.uint8)
    result = evaluate(predictor, FakeDataset({"b": blank}, {"b": np.zeros((32, 32), bool)}), ["b"])
    assert all(result.per_image.loc[0, m] == 1.0 for m in METRIC_NAMES)
    assert result.policy["empty"] == METRIC_POLICY["empty"]


def test_the_threshold_used_is_applied_and_recorded() -> None:
    image = np.full((32, 32, 3), (140, 0, 0), dtype=np.uint8)  # red 140 -> logit ~2 -> probability ~0.88
    truth = np.ones((32, 32), dtype=bool)
    dataset = FakeDataset({"x": image}, {"x": truth})
    loose = evaluate(Predictor(RedIsPolyp(), 32, threshold=0.5), dataset, ["x"])
    strict = evaluate(Predictor(RedIsPolyp(), 32, threshold=0.95), dataset, ["x"])
    assert loose.summary["recall"] == 1.0 and strict.summary["recall"] == 0.0
    assert strict.policy["threshold"] == 0.95


def test_progress_is_reported_after_each_batch(predictor: Predictor) -> None:
    image, mask = red_square(32, 32, 0, 0, 8)
    names = [f"i{k}" for k in range(5)]
    dataset = FakeDataset(dict.fromkeys(names, image), dict.fromkeys(names, mask))
    calls: list[tuple[int, int]] = []
    evaluate(predictor, dataset, names, batch_size=2, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(2, 5), (4, 5), (5, 5)]


def test_a_mask_of_another_size_than_its_image_is_refused_by_name(predictor: Predictor) -> None:
    image, _ = red_square(32, 48, 0, 0, 8)
    with pytest.raises(EvaluationError, match="'odd'.*48x32.*32x32"):
        evaluate(predictor, FakeDataset({"odd": image}, {"odd": np.zeros((32, 32), bool)}), ["odd"])


def test_no_names_is_a_clear_error(predictor: Predictor) -> None:
    with pytest.raises(EvaluationError, match="no images"):
        evaluate(predictor, FakeDataset({}, {}), [])


def test_write_produces_the_csv_and_json_a_reader_expects(predictor: Predictor, tmp_path: Path) -> None:
    image, mask = red_square(32, 32, 4, 4, 12)
    result = evaluate(predictor, FakeDataset({"a": image}, {"a": mask}), ["a"])
    result.write(tmp_path / "out")
    frame = pd.read_csv(tmp_path / "out" / "per_image.csv")
    assert list(frame.columns) == ["name", "height", "width", "tp", "fp", "fn", "tn", *METRIC_NAMES]
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["summary"] == result.summary
    assert saved["policy"]["threshold"] == 0.5
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["metrics.json", "per_image.csv"]


def test_a_result_can_be_built_from_counts_alone() -> None:
    result = EvaluationResult.from_counts(["a", "b"], [(2, 2), (2, 2)], torch.tensor([[4, 0, 0, 0], [0, 0, 0, 4]]))
    assert result.summary["dice"] == 1.0 and result.summary["dice_std"] == 0.0


@pytest.mark.slow
def test_real_kvasir_validation_images_are_scored_at_their_own_resolution(kvasir_path: Path) -> None:
    dataset = open_dataset(kvasir_path)
    names = resolve_split(dataset, "medico2020").val[:4]
    result = evaluate(Predictor(unet(init_features=4), input_size=64), dataset, names, batch_size=2)
    for row in result.per_image.itertuples():
        assert (row.height, row.width) == dataset.read_mask(row.name).shape
        assert row.tp + row.fp + row.fn + row.tn == row.height * row.width
    assert result.summary["n_images"] == 4
