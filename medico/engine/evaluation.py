"""Scoring a model on a dataset split: predictions at each image's original resolution, per-image metrics.

The model predicts at its input size; the probabilities are resized back to each image's own size, thresholded
at the predictor's threshold and compared with the ground truth by :mod:`medico.metrics` (one image's confusion
counts at a time, so images of different sizes mix freely). The reported figure is the mean over images.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch

from medico.engine.contract import LogitRanges, check_logit_ranges
from medico.engine.ensemble import Ensemble
from medico.engine.inference import MaskPredictor, Predictor
from medico.engine.preprocess import resize_probabilities
from medico.engine.runtime import resolve_device, resolve_precision
from medico.engine.tta import check_tta
from medico.errors import MedicoError
from medico.files import write_atomic
from medico.leaderboard.entry import INTERVALS
from medico.metrics import (
    METRIC_POLICY,
    THRESHOLD,
    confusion_counts,
    reduce_scores,
    scores_from_counts,
)
from medico.polyp_metrics import PAPER_METRICS, PAPER_POLICY, paper_scores
from medico.runs.checkpoint import Checkpoint, load_model
from medico.runs.folder import METRICS, PER_IMAGE
from medico.stats.per_image import ScoreSummary, describe

__all__ = [
    "COUNT_NAMES",
    "EvaluationError",
    "EvaluationResult",
    "ImageSource",
    "check_threshold",
    "evaluate",
    "load_ensemble",
    "load_predictor",
    "prediction_record",
]

COUNT_NAMES = ("tp", "fp", "fn", "tn")
READ_THREADS = min(8, os.cpu_count() or 1)
"""Threads decoding evaluation images ahead of the model (decoders release the GIL)."""


class EvaluationError(MedicoError):
    """Nothing to evaluate, or an image and its ground truth disagree in size."""


class ImageSource(Protocol):
    """What :func:`evaluate` reads: images (RGB uint8) and masks (bool) at their original resolution, by name."""

    def read_image(self, name: str) -> np.ndarray: ...

    def read_mask(self, name: str) -> np.ndarray: ...


@dataclass(frozen=True)
class EvaluationResult:
    """Per-image scores, their summary (mean and population std over images) and the metric policy used.

    ``per_image`` columns: name, height, width, tp, fp, fn, tn, dice, iou, precision, recall, f2, accuracy, and the
    papers' measures (:data:`medico.polyp_metrics.PAPER_METRICS`) where they were asked for.
    ``summary`` keys: each metric (mean), ``<metric>_std`` and ``n_images``. ``logit_ranges``: ``(N, 2)`` lowest
    and highest logit per image, where the model's logits were watched (:class:`medico.engine.contract.LogitRanges`).
    """

    per_image: pd.DataFrame
    summary: dict[str, float]
    policy: dict[str, Any]
    logit_ranges: np.ndarray | None = field(default=None, compare=False, repr=False)

    @functools.cached_property
    def intervals(self) -> dict[str, ScoreSummary]:
        """Mean, std and 95% bootstrap interval over images of each score the leaderboard shows an interval for."""
        return {name: describe(self.per_image[name].to_numpy()) for name in INTERVALS}

    @classmethod
    def from_counts(
        cls,
        names: Sequence[str],
        sizes: Sequence[tuple[int, int]],
        counts: torch.Tensor,
        policy: dict[str, Any] | None = None,
        logit_ranges: np.ndarray | None = None,
        paper: Sequence[dict[str, float]] | None = None,
    ) -> EvaluationResult:
        """Build the result from per-image ``(height, width)`` and ``(N, 4)`` confusion counts, and the papers'
        measures of each image (:func:`medico.polyp_metrics.paper_scores`) when they were computed."""
        scores = scores_from_counts(counts)
        policy = dict(policy or METRIC_POLICY)
        if paper is not None:
            scores |= {name: torch.tensor([one[name] for one in paper], dtype=torch.float64) for name in PAPER_METRICS}
            policy.setdefault("paper_measures", PAPER_POLICY)
        frame = pd.DataFrame({"name": list(names)})
        frame["height"] = [h for h, _ in sizes]
        frame["width"] = [w for _, w in sizes]
        for column, values in zip(COUNT_NAMES, counts.T):
            frame[column] = values.numpy()
        for metric, values in scores.items():
            frame[metric] = values.numpy()
        summary: dict[str, float] = reduce_scores(scores, "mean_std")
        summary["n_images"] = len(frame)
        return cls(per_image=frame, summary=summary, policy=policy, logit_ranges=logit_ranges)

    def write(
        self, folder: Path, data: dict[str, Any] | None = None, prediction: dict[str, Any] | None = None
    ) -> None:
        """Write ``per_image.csv`` and ``metrics.json`` (summary, policy and, when given, what ``data`` the images
        came from and how they were predicted: :func:`prediction_record`) into ``folder``, each atomically. Where:
        :func:`medico.runs.folder.evaluation_folder`."""
        folder = Path(folder)
        write_atomic(folder / PER_IMAGE, self.per_image.to_csv(index=False), replace=True)
        given = {"data": data, "prediction": prediction}
        saved = {"summary": self.summary, "policy": self.policy} | {k: v for k, v in given.items() if v is not None}
        write_atomic(folder / METRICS, json.dumps(saved, indent=2) + "\n", replace=True)


def evaluate(
    predictor: MaskPredictor,
    dataset: ImageSource,
    names: Sequence[str],
    *,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
    check_logits: bool = True,
    paper: bool = False,
) -> EvaluationResult:
    """Score ``predictor`` on the images ``names`` of ``dataset`` at their original resolution.

    Args:
        predictor: the model (or ensemble) wrapped for inference (input size, device, precision, threshold, tta).
        dataset: anything with ``read_image(name)`` and ``read_mask(name)`` (see :class:`ImageSource`).
        names: the images to score, in the order of the result's rows.
        batch_size: images per forward pass.
        progress: called as ``progress(done, total)`` after each batch.
        check_logits: stop on NaN, infinite or squashed logits (:func:`medico.engine.contract.check_logit_ranges`);
            whoever turns it off checks the result's ``logit_ranges`` (as a sharded evaluation does once gathered).
        paper: also score each image's probability map with the measures polyp papers report
            (:mod:`medico.polyp_metrics`: S-measure, E-measure, weighted F-measure, MAE, HD95).

    Returns:
        The per-image scores, their summary and the metric policy (with the threshold actually used).

    Raises:
        ContractError: the model's logits are NaN or infinite on some images, or squashed into [0, 1].
    """
    names = list(names)
    if not names:
        raise EvaluationError("evaluate: no images to score (the split's name list is empty)")
    if batch_size < 1:
        raise EvaluationError(f"batch_size: expected a positive integer, got {batch_size}")
    sizes: list[tuple[int, int]] = []
    counts: list[torch.Tensor] = []
    measures: list[dict[str, float]] = []
    ranges = LogitRanges()
    batches = [names[start : start + batch_size] for start in range(0, len(names), batch_size)]
    # Images are decoded by threads, the next batch while the model predicts this one: on a GPU, decoding
    # full-resolution frames one after another would take longer than predicting them. The threads also resize
    # each prediction back to its image's size and count it.
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        ahead = [pool.submit(_read_pair, dataset, name) for name in batches[0]]
        for index, batch in enumerate(batches):
            pairs = [future.result() for future in ahead]
            if index + 1 < len(batches):
                ahead = [pool.submit(_read_pair, dataset, name) for name in batches[index + 1]]
            for name, (image, truth) in zip(batch, pairs):
                if image.shape[:2] != truth.shape:
                    raise EvaluationError(
                        f"image {name!r}: the image is {image.shape[1]}x{image.shape[0]} but its mask is "
                        f"{truth.shape[1]}x{truth.shape[0]} (width x height); they must match"
                    )
            small = predictor.small_probabilities([image for image, _ in pairs], ranges)
            # Resizing back to full resolution and counting run in the threads too (cv2 and torch release the GIL).
            truths = [truth for _, truth in pairs]
            scored = pool.map(_score, [predictor] * len(pairs), small, truths, [paper] * len(pairs))
            for image_counts, image_measures in scored:
                counts.append(image_counts)
                measures += [image_measures] if image_measures is not None else []
            sizes += [truth.shape for _, truth in pairs]
            if progress is not None:
                progress(len(sizes), len(names))
    policy = {**METRIC_POLICY, "threshold": float(predictor.threshold)}
    result = EvaluationResult.from_counts(
        names, sizes, torch.stack(counts), policy, ranges.read(), paper=measures if paper else None
    )
    if check_logits:
        check_logit_ranges(names, result.logit_ranges)
    return result


def _read_pair(dataset: ImageSource, name: str) -> tuple[np.ndarray, np.ndarray]:
    return dataset.read_image(name), dataset.read_mask(name)


def _score(
    predictor: MaskPredictor, small: np.ndarray, truth: np.ndarray, paper: bool
) -> tuple[torch.Tensor, dict[str, float] | None]:
    """One image's confusion counts and, when asked, the papers' measures of its full-resolution probabilities."""
    mask = predictor.full_mask(small, *truth.shape)
    counts = confusion_counts(torch.from_numpy(mask), torch.from_numpy(truth))
    return counts, paper_scores(resize_probabilities(small, *truth.shape), mask, truth) if paper else None


def check_threshold(threshold: float) -> None:
    """Refuse a ``--threshold`` that is not a probability strictly between 0 and 1 (every mask would be one value)."""
    if not 0.0 < threshold < 1.0:
        raise EvaluationError(f"--threshold: expected a probability strictly between 0 and 1, got {threshold}")


def load_predictor(
    path: Path,
    *,
    model: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    threshold: float = THRESHOLD,
    compile: bool = False,
    tta: str = "none",
) -> tuple[Predictor, Checkpoint]:
    """The model of a checkpoint file, wrapped for inference at the input size it was trained at.

    ``model`` is the spec the user trusts to build it with (see :func:`medico.runs.checkpoint.load_checkpoint`);
    ``device`` None or 'auto' picks CUDA when available; ``precision`` None or 'auto' picks the device's default;
    ``compile`` compiles the model for inference and ``tta`` is its test-time augmentation (see
    :class:`medico.engine.inference.Predictor`).
    """
    check_threshold(threshold)
    network, checkpoint = load_model(path, model=model)
    chosen = resolve_device(device)
    chosen_precision = resolve_precision(chosen, precision)
    predictor = Predictor(
        network, checkpoint.input_size, chosen, chosen_precision, threshold, compile=compile, tta=tta
    )
    return predictor, checkpoint


def load_ensemble(paths: Sequence[Path], **settings: Any) -> tuple[MaskPredictor, list[Checkpoint]]:
    """The predictor of one checkpoint, or the :class:`~medico.engine.ensemble.Ensemble` of several, each loaded by
    :func:`load_predictor` with the same ``settings`` (model, device, precision, threshold, compile, tta)."""
    if not paths:
        raise EvaluationError("ensemble: expected at least one checkpoint, got none")
    check_tta(settings.get("tta", "none"))  # before loading any model
    loaded = [load_predictor(Path(path), **settings) for path in paths]
    predictors, checkpoints = [p for p, _ in loaded], [c for _, c in loaded]
    return (predictors[0] if len(loaded) == 1 else Ensemble(predictors)), checkpoints


def prediction_record(predictor: MaskPredictor, paths: Sequence[Path], checkpoints: Sequence[Checkpoint]) -> dict:
    """How masks were predicted, for every result that holds them (evaluation, submission manifest, benchmark):
    the test-time augmentation, the number of models averaged and each model's checkpoint, spec and input size."""
    return {
        "tta": predictor.tta,
        "ensemble": len(checkpoints),
        "members": [
            {"checkpoint": str(path), "model": checkpoint.model_spec, "input_size": checkpoint.input_size}
            for path, checkpoint in zip(paths, checkpoints)
        ],
    }

