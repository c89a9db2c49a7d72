"""The measures polyp papers report beside Dice and IoU: S-measure, E-measure, weighted F-measure, MAE and HD95.

PraNet's evaluation toolbox (Fan et al., MICCAI 2020) and most polyp papers since score the model's probability map
with the salient-object measures; medical papers add the 95th-percentile Hausdorff distance. The conventions are
those of the toolbox as ``pysodmetrics`` (module ``py_sod_metrics``) implements it, checked against it on seeded maps
in the tests; that package is not a dependency because every release pins numpy and OpenCV below the versions medico
runs on. The policy, written into every result as :data:`PAPER_POLICY`:

* the probability map at the ground truth's resolution is saved as the toolbox reads it: a grey 0..255 map
  (``round(255 p)``), then ``im2double`` and ``mapminmax`` (divided by 255, stretched to [0, 1] unless constant);
  the ground truth is the binary mask of :mod:`medico.metrics`;
* ``smeasure``: structure measure, alpha 0.5 (``Smeasure()["sm"]``); ``mean_em``: enhanced-alignment measure averaged
  over the 256 thresholds 0..255 (``Emeasure()["em"]["curve"].mean()``, the papers' "meanEm"); ``adaptive_em``: at
  the threshold ``min(2 mean, 1)`` (``["em"]["adp"]``); ``wfm``: weighted F-measure with beta^2 = 1
  (``WeightedFmeasure()["wfm"]``), 0 on an empty ground truth as in the toolbox; ``mae``: mean absolute error;
* ``hd95``: in pixels at the original resolution, between the borders of the thresholded mask and the ground truth
  (border = pixels with a 4-neighbour outside the mask), the 95th percentile of both directions' distances pooled
  (medpy's ``hd95``); 0 when both masks are empty, the image's diagonal when only one is (no border to measure to,
  so the worst distance the image allows, as BraTS scores a missed or spurious structure);
* each image gets its own values; the reported figure is the mean over images.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "EM_MAX",
    "MASK_INPUT",
    "PAPER_METRICS",
    "PAPER_POLICY",
    "hd95",
    "paper_scores",
    "saliency_scores",
    "toolbox_map",
]

PAPER_METRICS = ("smeasure", "mean_em", "adaptive_em", "wfm", "mae", "hd95")
PAPER_POLICY = {
    "input": "probability map at the ground truth's resolution as a grey 0..255 map, then divided by 255 and "
    "min-max stretched unless constant (PraNet's toolbox, pysodmetrics)",
    "smeasure": "structure measure, alpha 0.5",
    "mean_em": "E-measure averaged over thresholds 0..255 (meanEm)",
    "adaptive_em": "E-measure at threshold min(2 * mean, 1)",
    "wfm": "weighted F-measure, beta^2 = 1; 0 when the ground truth is empty",
    "mae": "mean absolute error between the map and the ground truth",
    "hd95": "pixels at the original resolution, thresholded mask's and ground truth's borders (4-connected), 95th "
    "percentile of both directions' distances pooled (medpy); 0 when both are empty, the image diagonal when one is",
}

MASK_INPUT = "binary masks as 0/255 maps (no probabilities to score): what a submission archive holds"
EM_MAX = 2.0
"""The largest E-measure: the toolbox divides by one pixel fewer than an image holds (at least one, here), so an image
of ``n`` pixels scores at most ``n / (n - 1)``, 2 on a two-pixel image and barely over 1 on a real frame."""
_EPS = np.spacing(1)  # MATLAB's eps, as the toolbox uses it
_THRESHOLDS = 256


def toolbox_map(probability: np.ndarray) -> np.ndarray:
    """The toolbox's view of a probability map: quantised to 0..255, divided by 255, min-max stretched unless
    constant. Returns float64 in [0, 1] of the same shape."""
    # In the toolbox's order of operations: its 256 thresholds then cut the same pixels to the last bit.
    pred = np.rint(np.clip(np.asarray(probability, dtype=np.float64), 0.0, 1.0) * 255.0) / 255.0
    low, high = pred.min(), pred.max()
    return (pred - low) / (high - low) if high != low else pred


def _ssim(pred: np.ndarray, truth: np.ndarray) -> float:
    degrees = pred.size - 1 + _EPS  # as the MATLAB original: a one-pixel quarter gives 0, not pysodmetrics' NaN
    x, y = pred.mean(), truth.mean()
    sigma_x = ((pred - x) ** 2).sum() / degrees
    sigma_y = ((truth - y) ** 2).sum() / degrees
    sigma_xy = ((pred - x) * (truth - y)).sum() / degrees
    alpha = 4 * x * y * sigma_xy
    beta = (x**2 + y**2) * (sigma_x + sigma_y)
    if alpha != 0:
        return float(alpha / (beta + _EPS))
    return 1.0 if beta == 0 else 0.0


def _object_score(values: np.ndarray) -> float:
    std = values.std(ddof=1) if values.size > 1 else 0.0  # MATLAB's std of one value is 0 (numpy's: NaN)
    mean = values.mean()
    return float(2 * mean / (mean**2 + 1 + std + _EPS))


def _smeasure(pred: np.ndarray, truth: np.ndarray, alpha: float = 0.5) -> float:
    share = truth.mean()
    if share == 0:
        return float(1 - pred.mean())
    if share == 1:
        return float(pred.mean())
    objects = _object_score(pred[truth]) * share + _object_score(1 - pred[~truth]) * (1 - share)
    h, w = truth.shape
    cy, cx = (int(v) + 1 for v in np.argwhere(truth).mean(axis=0).round())  # MATLAB's 1-based centroid split
    regions = 0.0
    for rows in (slice(0, cy), slice(cy, h)):
        for cols in (slice(0, cx), slice(cx, w)):
            part = truth[rows, cols]
            if part.size:  # an empty quarter weighs nothing
                regions += _ssim(pred[rows, cols], part) * part.size / truth.size
    return float(max(0.0, alpha * objects + (1 - alpha) * regions))


def _emeasure(pred_fg: np.ndarray, true_fg: np.ndarray, truth_fg: int, size: int) -> np.ndarray:
    """E-measure from the counts, per threshold: ``pred_fg`` predicted foreground pixels, ``true_fg`` those on the
    ground truth's foreground, ``truth_fg`` the ground truth's foreground and ``size`` the image's pixels."""
    if truth_fg == 0:
        enhanced = size - pred_fg
    elif truth_fg == size:
        enhanced = pred_fg.astype(np.float64)
    else:
        false_fg = pred_fg - true_fg
        missed = truth_fg - true_fg
        true_bg = size - pred_fg - missed
        pred_mean, truth_mean = pred_fg / size, truth_fg / size
        enhanced = np.zeros_like(pred_mean, dtype=np.float64)
        parts = (
            (true_fg, 1 - pred_mean, 1 - truth_mean),
            (false_fg, 1 - pred_mean, -truth_mean),
            (missed, -pred_mean, 1 - truth_mean),
            (true_bg, -pred_mean, -truth_mean),
        )
        for count, a, b in parts:
            align = 2 * a * b / (a**2 + b**2 + _EPS)
            enhanced = enhanced + (align + 1) ** 2 / 4 * count
    # the toolbox's divisor, n - 1 (+ eps), except on a one-pixel image, where it would give 1 / eps
    return np.asarray(enhanced, dtype=np.float64) / (max(size - 1, 1) + _EPS)


def _emeasures(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(mean E over the thresholds 0..255, adaptive E), as the toolbox computes them."""
    levels = (pred * 255).astype(np.uint8)
    above = np.cumsum(np.bincount(levels.ravel(), minlength=_THRESHOLDS)[::-1])  # pixels at or above 255, 254, ...
    above_true = np.cumsum(np.bincount(levels[truth], minlength=_THRESHOLDS)[::-1])
    size, truth_fg = truth.size, int(truth.sum())
    curve = _emeasure(above, above_true, truth_fg, size)
    binary = pred >= min(2 * pred.mean(), 1.0)
    adaptive = _emeasure(np.array(binary.sum()), np.array((binary & truth).sum()), truth_fg, size)
    return float(curve.mean()), float(adaptive)


def _gaussian_kernel(size: int = 7, sigma: float = 5.0) -> np.ndarray:
    """MATLAB's ``fspecial('gaussian', size, sigma)``."""
    half = (size - 1) / 2
    y, x = np.ogrid[-half : half + 1, -half : half + 1]
    kernel = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    kernel[kernel < np.finfo(kernel.dtype).eps * kernel.max()] = 0
    return kernel / kernel.sum()


def _weighted_f(pred: np.ndarray, truth: np.ndarray, beta2: float = 1.0) -> float:
    if not truth.any():
        return 0.0
    import cv2  # imported here: scoring without these measures (most commands) pays nothing for them
    from scipy import ndimage

    distance, (iy, ix) = ndimage.distance_transform_edt(~truth, return_indices=True)
    error = np.abs(pred - truth)
    spread = error[iy, ix]  # outside the polyp, the error of the nearest polyp pixel (edges handled as in MATLAB)
    # MATLAB's imfilter (zero padding); the kernel is symmetric, so OpenCV's correlation is the convolution
    blurred = cv2.filter2D(spread, -1, _gaussian_kernel(), borderType=cv2.BORDER_CONSTANT)
    least = np.where(truth & (blurred < error), blurred, error)
    weighted = least * np.where(truth, 1.0, 2 - np.exp(np.log(0.5) / 5 * distance))
    true_w = truth.sum() - weighted[truth].sum()
    false_w = weighted[~truth].sum()
    recall = 1 - weighted[truth].mean()
    precision = true_w / (true_w + false_w + _EPS)
    return float((1 + beta2) * recall * precision / (recall + beta2 * precision + _EPS))


def saliency_scores(probability: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """S-measure, mean and adaptive E-measure, weighted F-measure and MAE of one image's probability map.

    Args:
        probability: float map in [0, 1], shape ``(H, W)`` (a binary mask scores as a 0/255 map).
        truth: boolean ground truth of the same shape.

    Returns:
        ``{"smeasure", "mean_em", "adaptive_em", "wfm", "mae": float}``.

    The toolbox divides the E-measure by one pixel fewer than the image holds, so a perfect map scores
    ``n / (n - 1)`` at each threshold but the lowest (where every pixel is foreground): just above 1 on a tiny image,
    never above :data:`EM_MAX` (a one-pixel image is divided by one pixel, where the toolbox's ``1 / eps`` explodes).

    Example:
        >>> truth = np.zeros((8, 8), bool); truth[2:6, 2:6] = True
        >>> {k: round(v, 4) for k, v in saliency_scores(truth.astype(float), truth).items()}
        {'smeasure': 1.0, 'mean_em': 1.0129, 'adaptive_em': 1.0159, 'wfm': 1.0, 'mae': 0.0}
    """
    if probability.shape != truth.shape or probability.ndim != 2:
        raise ValueError(
            f"probability and truth: expected two (H, W) maps of one shape, got {probability.shape} and {truth.shape}"
        )
    pred, truth = toolbox_map(probability), truth.astype(bool)
    mean_em, adaptive_em = _emeasures(pred, truth)
    return {
        "smeasure": _smeasure(pred, truth),
        "mean_em": mean_em,
        "adaptive_em": adaptive_em,
        "wfm": _weighted_f(pred, truth),
        "mae": float(np.abs(pred - truth).mean()),
    }


def _border(mask: np.ndarray) -> np.ndarray:
    """``(K, 2)`` coordinates of the pixels of ``mask`` with a 4-neighbour outside it (or outside the image)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    top, left = rows[0], cols[0]
    crop = np.pad(mask[top : rows[-1] + 1, left : cols[-1] + 1], 1)  # outside the image counts as outside the mask
    inner = crop[:-2, 1:-1] & crop[2:, 1:-1] & crop[1:-1, :-2] & crop[1:-1, 2:]
    return np.argwhere(crop[1:-1, 1:-1] & ~inner) + (top, left)


def hd95(mask: np.ndarray, truth: np.ndarray) -> float:
    """95th-percentile Hausdorff distance in pixels between two boolean masks of one shape (medpy's ``hd95``), under
    the empty policy of :data:`PAPER_POLICY`: 0 when both are empty, the image's diagonal when one is."""
    if mask.shape != truth.shape or mask.ndim != 2:
        raise ValueError(f"mask and truth: expected two (H, W) masks of one shape, got {mask.shape} and {truth.shape}")
    mask, truth = mask.astype(bool), truth.astype(bool)
    if not mask.any() and not truth.any():
        return 0.0
    if not mask.any() or not truth.any():
        return float(math.hypot(*mask.shape))
    mask_border, truth_border = _border(mask), _border(truth)
    from scipy.spatial import cKDTree  # imported here, as in _weighted_f

    to_truth, _ = cKDTree(truth_border).query(mask_border)  # exact Euclidean nearest border pixel
    to_mask, _ = cKDTree(mask_border).query(truth_border)
    return float(np.percentile(np.concatenate((to_truth, to_mask)), 95))


def paper_scores(probability: np.ndarray, mask: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Every measure of :data:`PAPER_METRICS` for one image: the saliency measures of its probability map and HD95
    of its thresholded ``mask`` (the one Dice and IoU are counted from)."""
    return saliency_scores(probability, truth) | {"hd95": hd95(mask, truth)}
