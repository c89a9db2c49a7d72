"""Segmentation metrics: agreement with a naive reference, hand-made cases, the empty-mask policy, doctests."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import medico.metrics
from medico.metrics import (
    METRIC_NAMES,
    METRIC_POLICY,
    confusion_counts,
    reduce_scores,
    scores_from_counts,
    segmentation_scores,
)


def naive_scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """One image, pixel by pixel, with the empty policy spelled out case by case."""
    tp = fp = fn = tn = 0
    for p, t in zip(pred.ravel().tolist(), truth.ravel().tolist()):
        if p and t:
            tp += 1
        elif p:
            fp += 1
        elif t:
            fn += 1
        else:
            tn += 1
    if tp + fp + fn == 0:
        return dict.fromkeys(METRIC_NAMES, 1.0)

    def ratio(num: float, den: float) -> float:
        return num / den if den else 0.0

    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    return {
        "dice": ratio(2 * tp, 2 * tp + fp + fn),
        "iou": ratio(tp, tp + fp + fn),
        "precision": precision,
        "recall": recall,
        "f2": ratio(5 * precision * recall, 4 * precision + recall),
        "accuracy": ratio(tp + tn, tp + fp + fn + tn),
    }


shapes = st.tuples(st.integers(1, 4), st.integers(1, 12), st.integers(1, 12))
mask_pairs = shapes.flatmap(lambda shape: st.tuples(arrays(bool, shape), arrays(bool, shape)))


@settings(max_examples=150, deadline=None)
@given(mask_pairs)
def test_batched_scores_match_a_naive_reference_image_by_image(pair: tuple[np.ndarray, np.ndarray]) -> None:
    preds, truths = pair
    scores = scores_from_counts(confusion_counts(torch.from_numpy(preds), torch.from_numpy(truths)))
    for index, (pred, truth) in enumerate(zip(preds, truths)):
        expected = naive_scores(pred, truth)
        for name in METRIC_NAMES:
            assert float(scores[name][index]) == pytest.approx(expected[name], abs=1e-12), name


@settings(max_examples=100, deadline=None)
@given(mask_pairs)
def test_a_single_image_scores_as_it_does_inside_a_batch(pair: tuple[np.ndarray, np.ndarray]) -> None:
    preds, truths = pair
    batched = scores_from_counts(confusion_counts(torch.from_numpy(preds), torch.from_numpy(truths)))
    single = scores_from_counts(confusion_counts(torch.from_numpy(preds[0]), torch.from_numpy(truths[0])))
    counts = confusion_counts(torch.from_numpy(preds[0]), torch.from_numpy(truths[0]))
    assert counts.shape == (4,) and int(counts.sum()) == preds[0].size
    for name in METRIC_NAMES:
        assert single[name].shape == () and float(single[name]) == float(batched[name][0])


@settings(max_examples=100, deadline=None)
@given(mask_pairs)
def test_integer_masks_score_like_boolean_ones_and_the_mean_is_over_images(pair: tuple[np.ndarray, np.ndarray]) -> None:
    preds, truths = pair
    as_bool = segmentation_scores(zip(torch.from_numpy(preds), torch.from_numpy(truths)))
    as_int = segmentation_scores(
        zip(torch.from_numpy(preds.astype(np.uint8)), torch.from_numpy(truths.astype(np.int64)))
    )
    naive = [naive_scores(p, t) for p, t in zip(preds, truths)]
    for name in METRIC_NAMES:
        assert as_bool[name] == pytest.approx(as_int[name])
        assert as_bool[name] == pytest.approx(np.mean([n[name] for n in naive]))


def scores(pred: list[list[int]], truth: list[list[int]]) -> dict[str, float]:
    values = scores_from_counts(confusion_counts(torch.tensor(pred), torch.tensor(truth)))
    return {name: float(v) for name, v in values.items()}


def test_a_perfect_prediction_scores_one() -> None:
    assert scores([[1, 0], [1, 1]], [[1, 0], [1, 1]]) == dict.fromkeys(METRIC_NAMES, 1.0)


def test_empty_prediction_of_empty_truth_scores_one_everywhere() -> None:
    assert scores([[0, 0], [0, 0]], [[0, 0], [0, 0]]) == dict.fromkeys(METRIC_NAMES, 1.0)


def test_an_empty_prediction_of_a_real_polyp_scores_zero_but_for_accuracy() -> None:
    result = scores([[0, 0], [0, 0]], [[1, 0], [0, 0]])
    assert result == {"dice": 0.0, "iou": 0.0, "precision": 0.0, "recall": 0.0, "f2": 0.0, "accuracy": 0.75}


def test_a_prediction_on_an_empty_truth_has_recall_zero() -> None:
    result = scores([[1, 1], [0, 0]], [[0, 0], [0, 0]])
    assert result == {"dice": 0.0, "iou": 0.0, "precision": 0.0, "recall": 0.0, "f2": 0.0, "accuracy": 0.5}


def test_disjoint_masks_score_zero_overlap() -> None:
    result = scores([[1, 0], [0, 0]], [[0, 0], [0, 1]])
    assert result["dice"] == result["iou"] == result["precision"] == result["recall"] == result["f2"] == 0.0
    assert result["accuracy"] == 0.5


def test_half_overlap() -> None:
    # prediction: the top half of a 4x4 image; truth: the left half; they share one quarter
    pred = [[1, 1, 1, 1]] * 2 + [[0, 0, 0, 0]] * 2
    truth = [[1, 1, 0, 0]] * 4
    assert confusion_counts(torch.tensor(pred), torch.tensor(truth)).tolist() == [4, 4, 4, 4]
    result = scores(pred, truth)
    assert result == pytest.approx(
        {"dice": 0.5, "iou": 1 / 3, "precision": 0.5, "recall": 0.5, "f2": 0.5, "accuracy": 0.5}
    )


def test_f2_weighs_recall_four_times_precision_by_hand() -> None:
    # tp 3, fp 1, fn 3: precision 3/4, recall 1/2, F2 = 5PR / (4P + R) = (15/8) / (7/2) = 15/28
    pred = [[1, 1, 1, 1, 0, 0, 0, 0]]
    truth = [[1, 1, 1, 0, 1, 1, 1, 0]]
    result = scores(pred, truth)
    assert result["precision"] == pytest.approx(0.75) and result["recall"] == pytest.approx(0.5)
    assert result["f2"] == pytest.approx(15 / 28)


def test_reduction_is_explicit() -> None:
    per_image = scores_from_counts(torch.tensor([[1, 0, 0, 3], [0, 1, 0, 3]]))
    assert reduce_scores(per_image, "none") is per_image
    assert reduce_scores(per_image, "mean")["dice"] == 0.5
    with pytest.raises(ValueError, match="reduction.*'sum'"):
        reduce_scores(per_image, "sum")  # type: ignore[arg-type]


def test_bad_inputs_name_the_argument_and_what_was_found() -> None:
    with pytest.raises(ValueError, match=r"same shape.*\(2, 2\).*\(2, 3\)"):
        confusion_counts(torch.zeros(2, 2, dtype=torch.bool), torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="preds.*float.*threshold"):
        confusion_counts(torch.rand(2, 2), torch.zeros(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"target.*0/1.*\[0, 255\]"):
        confusion_counts(torch.zeros(2, 2, dtype=torch.bool), torch.tensor([[0, 255], [0, 0]], dtype=torch.uint8))
    with pytest.raises(ValueError, match="no images"):
        segmentation_scores([])
    with pytest.raises(ValueError, match="last dimension 4"):
        scores_from_counts(torch.zeros(3, 3))


def test_images_of_different_sizes_are_scored_together() -> None:
    perfect = (torch.ones(2, 3, dtype=torch.bool), torch.ones(2, 3, dtype=torch.bool))
    missed = (torch.zeros(5, 4, dtype=torch.long), torch.ones(5, 4, dtype=torch.long))
    assert segmentation_scores([perfect, missed], reduction="none")["dice"].tolist() == [1.0, 0.0]
    assert segmentation_scores([perfect, missed])["dice"] == 0.5


def test_the_policy_states_threshold_reduction_and_empty_masks() -> None:
    assert METRIC_POLICY["threshold"] == 0.5
    assert "mean over images" in METRIC_POLICY["reduction"]
    assert "both empty" in METRIC_POLICY["empty"]


def test_the_docstring_examples_run() -> None:
    result = doctest.testmod(medico.metrics, extraglobs={"torch": torch}, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 2 and result.failed == 0


def test_mean_std_reduction_gives_the_population_spread_over_images() -> None:
    per_image = {"dice": torch.tensor([1.0, 0.0, 0.5, 0.5], dtype=torch.float64)}
    assert reduce_scores(per_image, "mean_std") == {"dice": 0.5, "dice_std": pytest.approx((0.125) ** 0.5)}
