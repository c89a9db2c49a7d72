"""Scoring a model on a dataset split: predictions at each image's original resolution, per-image metrics.

The model predicts at its input size; the probabilities are resized back to each image's own size, thresholded
at the predictor's threshold and compared with the ground truth by :mod:`medico.metrics` (one image's confusion
counts at a time, so images of different sizes mix freely). The reported figure is the mean over images; the result
itself (:class:`~medico.engine.result.EvaluationResult`) is built from the counts alone, without torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from medico.engine.contract import LogitRanges, check_logit_ranges
from medico.engine.ensemble import Ensemble
from medico.engine.inference import MaskPredictor, Predictor
from medico.engine.preprocess import resize_probabilities
from medico.engine.result import EvaluationResult
from medico.engine.runtime import MASK_PRECISION, resolve_device, resolve_precision
from medico.engine.tta import check_tta
from medico.errors import MedicoError
from medico.metrics import METRIC_POLICY, THRESHOLD, confusion_counts
from medico.polyp_metrics import paper_scores
from medico.runs.checkpoint import Checkpoint, load_model

__all__ = [
    "EvaluationError",
    "ImageSource",
    "check_threshold",
    "evaluate",
    "load_ensemble",
    "load_predictor",
    "prediction_record",
]

READ_THREADS = min(8, os.cpu_count() or 1)
"""Threads decoding evaluation images ahead of the model (decoders release the GIL)."""


class EvaluationError(MedicoError):
    """Nothing to evaluate, or an image and its ground truth disagree in size."""


class ImageSource(Protocol):
    """What :func:`evaluate` reads: images (RGB uint8) and masks (bool) at their original resolution, by name."""

    def read_image(self, name: str) -> np.ndarray: ...

    def read_mask(self, name: str) -> np.ndarray: ...


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
    counts: list[np.ndarray] = []
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
            # Resizing back to full resolution and counting run in the threads too (cv2 and numpy release the GIL).
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
        names, sizes, np.stack(counts), policy, ranges.read(), paper=measures if paper else None
    )
    if check_logits:
        check_logit_ranges(names, result.logit_ranges)
    return result


def _read_pair(dataset: ImageSource, name: str) -> tuple[np.ndarray, np.ndarray]:
    return dataset.read_image(name), dataset.read_mask(name)


def _score(
    predictor: MaskPredictor, small: np.ndarray, truth: np.ndarray, paper: bool
) -> tuple[np.ndarray, dict[str, float] | None]:
    """One image's confusion counts and, when asked, the papers' measures of its full-resolution probabilities."""
    mask = predictor.full_mask(small, *truth.shape)
    counts = confusion_counts(mask, truth)
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
    precision: str = MASK_PRECISION,
    threshold: float = THRESHOLD,
    compile: bool = False,
    tta: str = "none",
) -> tuple[Predictor, Checkpoint]:
    """The model of a checkpoint file, wrapped for inference at the input size it was trained at.

    ``model`` is the spec the user trusts to build it with (see :func:`medico.runs.checkpoint.load_checkpoint`);
    ``device`` None or 'auto' picks CUDA when available; ``precision`` 'auto' picks the device's fast default;
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
    the precision, the test-time augmentation, the number of models averaged and each model's checkpoint, spec and
    input size."""
    return {
        "precision": predictor.precision,
        "tta": predictor.tta,
        "ensemble": len(checkpoints),
        "members": [
            {"checkpoint": str(path), "model": checkpoint.model_spec, "input_size": checkpoint.input_size}
            for path, checkpoint in zip(paths, checkpoints)
        ],
    }

