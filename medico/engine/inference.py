"""Prediction at the original resolution: resize in, forward, probabilities back to each image's size, threshold."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from medico.engine.contract import CONTRACT, ContractError, LogitRanges, check_output
from medico.engine.preprocess import normalize, resize_probabilities, to_tensor
from medico.engine.runtime import autocast, autotune_convolutions, compile_for_inference, default_memory_format
from medico.engine.tta import check_tta, mean_probabilities
from medico.metrics import THRESHOLD

__all__ = ["MaskPredictor", "Predictor"]


class MaskPredictor:
    """Masks and probability maps at each image's own size, from probabilities at one square size: what a
    :class:`Predictor` (one model) and an :class:`~medico.engine.ensemble.Ensemble` (several) share."""

    threshold: float
    tta: str
    precision: str

    def small_probabilities(self, images: Sequence[np.ndarray], ranges: LogitRanges | None = None) -> np.ndarray:
        """Probabilities ``(B, S, S)`` at one square size, on the CPU; ``ranges`` records the logits'."""
        raise NotImplementedError

    def full_mask(self, small: np.ndarray, height: int, width: int) -> np.ndarray:
        """One image's mask at its own size: its small probability map resized back, then thresholded."""
        return resize_probabilities(small, height, width) >= self.threshold

    def probabilities(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per image, a float32 probability map at the image's own height and width."""
        if not images:
            return []
        small = _finite(self.small_probabilities(images))
        return [resize_probabilities(p, *image.shape[:2]) for p, image in zip(small, images)]

    def masks(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per image, a boolean mask at the image's own size (probability >= threshold)."""
        if not images:
            return []
        small = _finite(self.small_probabilities(images))
        return [self.full_mask(p, *image.shape[:2]) for p, image in zip(small, images)]

    def predict_all(self, images: Iterable[np.ndarray], batch_size: int = 8) -> Iterator[np.ndarray]:
        """Masks for a stream of images, ``batch_size`` at a time, in order."""
        pending: list[np.ndarray] = []
        for image in images:
            pending.append(image)
            if len(pending) == batch_size:
                yield from self.masks(pending)
                pending = []
        if pending:
            yield from self.masks(pending)


class Predictor(MaskPredictor):
    """Wraps a model for inference on RGB uint8 images of any size.

    Args:
        model: a plugin's model (logits out).
        input_size: the square side the model was trained at.
        device: where to run it.
        precision: 'fp32', 'bf16' or 'fp16' autocast.
        threshold: probability at or above which a pixel is polyp.
        memory_format: layout of weights and batches (None: the device's inference default,
            :func:`medico.engine.runtime.default_memory_format`).
        compile: compile the model for inference (:func:`medico.engine.runtime.compile_for_inference`; CUDA graphs
            on a GPU); the first batch then takes seconds to compile, and a smaller batch later is padded to the
            largest seen so far (the last one repeated): a new batch shape would compile again.
        autotune: on a GPU, switch cuDNN autotuning on for the process (off only for plain baselines).
        tta: test-time augmentation, one of :data:`medico.engine.tta.TTA_MODES` (the mean probability over flips and
            rotations, :func:`medico.engine.tta.mean_probabilities`).
    """

    def __init__(
        self,
        model: nn.Module,
        input_size: int,
        device: torch.device | str = "cpu",
        precision: str = "fp32",
        threshold: float = THRESHOLD,
        memory_format: torch.memory_format | None = None,
        compile: bool = False,
        autotune: bool = True,
        tta: str = "none",
    ) -> None:
        self.device = torch.device(device)
        self.memory_format = memory_format if memory_format is not None else default_memory_format(self.device)
        self.model = model.to(self.device, memory_format=self.memory_format).eval()
        if autotune and self.device.type == "cuda":
            autotune_convolutions()
        self.compiled = compile
        self._largest_batch = 0  # with compile: what smaller batches are padded to
        if compile:
            self.model = compile_for_inference(self.model, self.device)
        self.input_size = input_size
        self.precision = precision
        self.threshold = threshold
        self.tta = check_tta(tta)

    @torch.inference_mode()
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Model logits ``(B, 1, S, S)`` in float32 for a uint8 batch (:func:`medico.engine.preprocess.to_tensor`)."""
        batch = normalize(batch.to(self.device, non_blocking=True, memory_format=self.memory_format))
        with autocast(self.device, self.precision):
            return check_output(self.model(batch), batch).float()

    def small_probabilities(self, images: Sequence[np.ndarray], ranges: LogitRanges | None = None) -> np.ndarray:
        """Probabilities ``(B, S, S)`` at the model's input size, on the CPU; ``ranges`` records the logits'."""
        batch = to_tensor(list(images), self.input_size)
        if self.compiled:
            self._largest_batch = pad_to = max(self._largest_batch, len(images))
            batch = torch.cat([batch, batch[-1:].expand(pad_to - len(images), *batch.shape[1:])])
        probabilities, logits = mean_probabilities(self.logits, batch, self.tta)
        if ranges is not None:
            ranges.add(torch.cat(logits, dim=1)[: len(images)])  # one row per image, over all its transforms
        return probabilities[: len(images), 0].cpu().numpy()


def _finite(small: np.ndarray) -> np.ndarray:
    """``small`` when every probability is a number: a NaN (a model's NaN logits) would threshold to an empty mask
    and pass for a prediction (an evaluation names such images itself, see :class:`LogitRanges`)."""
    broken = int(np.isnan(small).reshape(len(small), -1).any(axis=1).sum())
    if broken:
        raise ContractError(
            f"the model's logits are NaN on {broken} of the {len(small)} images of a batch: no mask is written from "
            f"them. Expected finite {CONTRACT}"
        )
    return small
