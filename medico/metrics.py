"""Segmentation metrics: per-image confusion counts first, ratios from the counts, an explicit reduction.

The policy (part of the contract, written into every result as :data:`METRIC_POLICY`):

* masks are read as the Medico organisers' evaluation script reads them (:data:`medico.data.masks.MASK_RULE`):
  greyscale, divided by 255 only when the maximum exceeds 127, values above 0.5 are polyp; masks that cannot
  be read as binary are refused;
* masks are compared at the ground truth's resolution, predictions thresholded at probability 0.5;
* each image gets Dice, IoU (Jaccard), precision, recall, F2 and accuracy from its own counts;
* an image whose ground truth and prediction are both empty scores 1 on every ratio; otherwise a ratio whose
  denominator is zero scores 0 (an empty prediction of a real polyp has precision 0, a prediction on an empty
  ground truth has recall 0);
* the reported figure is the mean over images (MediaEval style), never a mean of batch means.

Masks and counts may be numpy arrays or torch tensors: the arithmetic is numpy's, written once; a tensor is counted on
the CPU and its results come back as tensors. Nothing here imports torch, so organiser scoring never loads it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from medico.data.masks import MASK_RULE

if TYPE_CHECKING:
    import torch

    Array = np.ndarray | torch.Tensor

__all__ = [
    "METRIC_NAMES",
    "METRIC_POLICY",
    "THRESHOLD",
    "confusion_counts",
    "reduce_scores",
    "scores_from_counts",
    "segmentation_scores",
]

THRESHOLD = 0.5
METRIC_NAMES = ("dice", "iou", "precision", "recall", "f2", "accuracy")
METRIC_POLICY = {
    "masks": MASK_RULE,
    "threshold": THRESHOLD,
    "resolution": "ground truth's original resolution",
    "per_image": "confusion counts per image; ratios from each image's counts",
    "reduction": "mean over images",
    "empty": "ground truth and prediction both empty: every ratio is 1; otherwise a zero denominator gives 0",
}

Reduction = Literal["mean", "mean_std", "none"]


def _as_numpy(values: Array) -> tuple[np.ndarray, bool]:
    """``values`` as a numpy array, and whether they came as a torch tensor (whose results go back as tensors).

    torch is never imported here: a tensor can only be given where it already is.
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy(), True
    return np.asarray(values), False


def _as_given(values: np.ndarray, as_tensor: bool) -> Any:
    """``values`` as the caller gave its input: a numpy array, or a CPU tensor sharing its memory."""
    return sys.modules["torch"].from_numpy(np.asarray(values)) if as_tensor else np.asarray(values)


def _as_bool(name: str, mask: np.ndarray) -> np.ndarray:
    if mask.dtype == np.bool_:
        return mask
    if mask.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected a boolean or integer 0/1 mask, got {mask.dtype}; threshold it first")
    if mask.size and (mask.min() < 0 or mask.max() > 1):
        raise ValueError(f"{name}: expected values 0/1, got values in [{int(mask.min())}, {int(mask.max())}]")
    return mask.astype(bool)


def confusion_counts(preds: Array, target: Array) -> Array:
    """Per-image true/false positive/negative pixel counts.

    Args:
        preds: predicted masks, bool or 0/1 integers, shape ``(H, W)`` or ``(N, H, W)``: numpy arrays or torch
            tensors (counted on the CPU).
        target: ground-truth masks of the same shape.

    Returns:
        int64 ``(N, 4)`` (``(4,)`` for a single image), a tensor when either input is one: columns tp, fp, fn, tn.

    Example:
        >>> confusion_counts(np.array([[1, 1], [0, 0]]), np.array([[1, 0], [1, 0]])).tolist()
        [1, 1, 1, 1]
        >>> confusion_counts(torch.tensor([[1, 1], [0, 0]]), torch.tensor([[1, 0], [1, 0]])).tolist()
        [1, 1, 1, 1]
    """
    (p, p_tensor), (t, t_tensor) = _as_numpy(preds), _as_numpy(target)
    if p.shape != t.shape:
        raise ValueError(f"preds and target must have the same shape, got {tuple(p.shape)} and {tuple(t.shape)}")
    if p.ndim not in (2, 3):
        raise ValueError(f"preds: expected shape (H, W) or (N, H, W), got {tuple(p.shape)}")
    p, t = _as_bool("preds", p), _as_bool("target", t)
    pixels = p.shape[-2] * p.shape[-1]
    # Three counts per image instead of four (the others follow exactly); count_nonzero over a whole image is
    # several times faster than a sum along axes.
    counted = [
        (both, predicted - both, true - both, pixels - predicted - true + both)
        for both, predicted, true in (
            (np.count_nonzero(one_p & one_t), np.count_nonzero(one_p), np.count_nonzero(one_t))
            for one_p, one_t in zip(p.reshape(-1, *p.shape[-2:]), t.reshape(-1, *t.shape[-2:]))
        )
    ]
    counts = np.array(counted, dtype=np.int64).reshape(*p.shape[:-2], 4)
    return _as_given(counts, p_tensor or t_tensor)


def _ratio(numerator: np.ndarray, denominator: np.ndarray, both_empty: np.ndarray) -> np.ndarray:
    value = np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)
    return np.where(both_empty, 1.0, value)


def scores_from_counts(counts: Array) -> dict[str, Array]:
    """Dice, IoU, precision, recall, F2 and accuracy per image from confusion counts, under the empty policy.

    Args:
        counts: ``(N, 4)`` or ``(4,)`` counts as returned by :func:`confusion_counts` (an array or a tensor).

    Returns:
        ``{name: float64 (N,)}`` (0-d for a single image), tensors when ``counts`` is one; names as in
        :data:`METRIC_NAMES`.

    Example:
        >>> s = scores_from_counts(np.array([0, 0, 0, 16]))  # both masks empty
        >>> [float(s[name]) for name in METRIC_NAMES]
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    """
    values, as_tensor = _as_numpy(counts)
    if values.shape[-1] != 4:
        raise ValueError(f"counts: expected last dimension 4 (tp, fp, fn, tn), got shape {tuple(values.shape)}")
    tp, fp, fn, tn = np.moveaxis(values.astype(np.float64), -1, 0)
    both_empty = (tp + fp + fn) == 0
    scores = {
        "dice": _ratio(2 * tp, 2 * tp + fp + fn, both_empty),
        "iou": _ratio(tp, tp + fp + fn, both_empty),
        "precision": _ratio(tp, tp + fp, both_empty),
        "recall": _ratio(tp, tp + fn, both_empty),
        "f2": _ratio(5 * tp, 5 * tp + 4 * fn + fp, both_empty),
        "accuracy": _ratio(tp + tn, tp + fp + fn + tn, both_empty),
    }
    return {name: _as_given(score, as_tensor) for name, score in scores.items()}


def reduce_scores(scores: dict[str, Array], reduction: Reduction = "mean") -> dict[str, float] | dict[str, Array]:
    """Reduce per-image scores (arrays or tensors): ``"mean"`` over images (floats), ``"mean_std"`` (the means plus
    ``<name>_std``, the population standard deviation over images) or ``"none"`` (the per-image values as given)."""
    if reduction == "none":
        return scores
    if reduction not in ("mean", "mean_std"):
        raise ValueError(f"reduction: expected 'mean', 'mean_std' or 'none', got {reduction!r}")
    values = {name: _as_numpy(score)[0] for name, score in scores.items()}
    reduced = {name: float(one.mean()) for name, one in values.items()}
    if reduction == "mean_std":
        reduced |= {f"{name}_std": float(one.std()) for name, one in values.items()}
    return reduced


def segmentation_scores(
    pairs: Iterable[tuple[Array, Array]], reduction: Reduction = "mean"
) -> dict[str, float] | dict[str, Array]:
    """Scores over (prediction, ground truth) pairs of possibly different sizes, one image at a time."""
    counted = [_as_numpy(confusion_counts(pred, truth)) for pred, truth in pairs]
    if not counted:
        raise ValueError("segmentation_scores: no images to score")
    stacked = np.stack([counts for counts, _ in counted])
    return reduce_scores(scores_from_counts(_as_given(stacked, any(tensor for _, tensor in counted))), reduction)
