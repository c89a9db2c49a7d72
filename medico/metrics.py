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
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch

from medico.data.masks import MASK_RULE

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


def _as_bool(name: str, mask: torch.Tensor) -> torch.Tensor:
    if mask.dtype == torch.bool:
        return mask
    if mask.dtype.is_floating_point:
        raise TypeError(f"{name}: expected a boolean or integer 0/1 mask, got {mask.dtype}; threshold it first")
    if mask.numel() and (mask.min() < 0 or mask.max() > 1):
        raise ValueError(f"{name}: expected values 0/1, got values in [{int(mask.min())}, {int(mask.max())}]")
    return mask.bool()


def confusion_counts(preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image true/false positive/negative pixel counts.

    Args:
        preds: predicted masks, bool or 0/1 integers, shape ``(H, W)`` or ``(N, H, W)``.
        target: ground-truth masks of the same shape.

    Returns:
        int64 tensor ``(N, 4)`` (``(4,)`` for a single image): columns tp, fp, fn, tn.

    Example:
        >>> confusion_counts(torch.tensor([[1, 1], [0, 0]]), torch.tensor([[1, 0], [1, 0]])).tolist()
        [1, 1, 1, 1]
    """
    if preds.shape != target.shape:
        raise ValueError(
            f"preds and target must have the same shape, got {tuple(preds.shape)} and {tuple(target.shape)}"
        )
    if preds.dim() not in (2, 3):
        raise ValueError(f"preds: expected shape (H, W) or (N, H, W), got {tuple(preds.shape)}")
    p, t = _as_bool("preds", preds), _as_bool("target", target)
    dims = (-2, -1)
    # Three passes over the pixels instead of four; the other counts follow exactly.
    tp = (p & t).sum(dim=dims)
    fp = p.sum(dim=dims) - tp
    fn = t.sum(dim=dims) - tp
    tn = p.shape[-2] * p.shape[-1] - tp - fp - fn
    return torch.stack((tp, fp, fn, tn), dim=-1).to(torch.int64)


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor, both_empty: torch.Tensor) -> torch.Tensor:
    value = torch.where(denominator > 0, numerator / denominator.clamp(min=1e-12), torch.zeros_like(numerator))
    return torch.where(both_empty, torch.ones_like(value), value)


def scores_from_counts(counts: torch.Tensor) -> dict[str, torch.Tensor]:
    """Dice, IoU, precision, recall, F2 and accuracy per image from confusion counts, under the empty policy.

    Args:
        counts: ``(N, 4)`` or ``(4,)`` counts as returned by :func:`confusion_counts`.

    Returns:
        ``{name: float64 tensor (N,)}`` (scalars for a single image), names as in :data:`METRIC_NAMES`.

    Example:
        >>> s = scores_from_counts(torch.tensor([0, 0, 0, 16]))  # both masks empty
        >>> [float(s[name]) for name in METRIC_NAMES]
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    """
    if counts.shape[-1] != 4:
        raise ValueError(f"counts: expected last dimension 4 (tp, fp, fn, tn), got shape {tuple(counts.shape)}")
    tp, fp, fn, tn = counts.to(torch.float64).unbind(-1)
    both_empty = (tp + fp + fn) == 0
    return {
        "dice": _ratio(2 * tp, 2 * tp + fp + fn, both_empty),
        "iou": _ratio(tp, tp + fp + fn, both_empty),
        "precision": _ratio(tp, tp + fp, both_empty),
        "recall": _ratio(tp, tp + fn, both_empty),
        "f2": _ratio(5 * tp, 5 * tp + 4 * fn + fp, both_empty),
        "accuracy": _ratio(tp + tn, tp + fp + fn + tn, both_empty),
    }


def reduce_scores(
    scores: dict[str, torch.Tensor], reduction: Reduction = "mean"
) -> dict[str, float] | dict[str, torch.Tensor]:
    """Reduce per-image scores: ``"mean"`` over images (floats), ``"mean_std"`` (the means plus ``<name>_std``,
    the population standard deviation over images) or ``"none"`` (the per-image tensors)."""
    if reduction == "none":
        return scores
    if reduction not in ("mean", "mean_std"):
        raise ValueError(f"reduction: expected 'mean', 'mean_std' or 'none', got {reduction!r}")
    reduced = {name: float(values.mean()) for name, values in scores.items()}
    if reduction == "mean_std":
        reduced |= {f"{name}_std": float(values.std(unbiased=False)) for name, values in scores.items()}
    return reduced


def segmentation_scores(
    pairs: Iterable[tuple[torch.Tensor, torch.Tensor]], reduction: Reduction = "mean"
) -> dict[str, float] | dict[str, torch.Tensor]:
    """Scores over (prediction, ground truth) pairs of possibly different sizes, one image at a time."""
    counts = [confusion_counts(pred, truth) for pred, truth in pairs]
    if not counts:
        raise ValueError("segmentation_scores: no images to score")
    return reduce_scores(scores_from_counts(torch.stack(counts)), reduction)
