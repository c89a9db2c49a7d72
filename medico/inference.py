"""Prediction at the original resolution: resize in, forward, probabilities back to each image's size, threshold."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from medico.metrics import THRESHOLD
from medico.preprocess import normalize, resize_probabilities, to_tensor
from medico.runtime import MEMORY_FORMAT, autocast, autotune_convolutions, compile_for_inference

__all__ = ["Predictor"]


class Predictor:
    """Wraps a model for inference on RGB uint8 images of any size.

    Args:
        model: a plugin's model (logits out).
        input_size: the square side the model was trained at.
        device: where to run it.
        precision: 'fp32', 'bf16' or 'fp16' autocast.
        threshold: probability at or above which a pixel is polyp.
        memory_format: layout of weights and batches (channels_last by default, see medico.runtime).
        compile: compile the model for inference (:func:`medico.runtime.compile_for_inference`; CUDA graphs
            on a GPU); the first batch then takes seconds to compile.
        autotune: on a GPU, switch cuDNN autotuning on for the process (off only for plain baselines).
    """

    def __init__(
        self,
        model: nn.Module,
        input_size: int,
        device: torch.device | str = "cpu",
        precision: str = "fp32",
        threshold: float = THRESHOLD,
        memory_format: torch.memory_format = MEMORY_FORMAT,
        compile: bool = False,
        autotune: bool = True,
    ) -> None:
        self.device = torch.device(device)
        self.memory_format = memory_format
        self.model = model.to(self.device, memory_format=memory_format).eval()
        if autotune and self.device.type == "cuda":
            autotune_convolutions()
        self.compiled = compile
        if compile:
            self.model = compile_for_inference(self.model, self.device)
        self.input_size = input_size
        self.precision = precision
        self.threshold = threshold

    @torch.inference_mode()
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Model logits ``(B, 1, S, S)`` in float32 for a uint8 batch from :func:`medico.preprocess.to_tensor`."""
        batch = normalize(batch.to(self.device, non_blocking=True, memory_format=self.memory_format))
        with autocast(self.device, self.precision):
            return self.model(batch).float()

    def small_probabilities(self, images: Sequence[np.ndarray], *, pad_to: int = 0) -> np.ndarray:
        """Probabilities ``(B, S, S)`` at the model's input size, on the CPU.

        ``pad_to``: run the model on at least this many images (the last one repeated), so that a compiled
        model always sees one batch shape; only the results of ``images`` come back.
        """
        batch = to_tensor(list(images), self.input_size)
        if len(images) < pad_to:
            batch = torch.cat([batch, batch[-1:].expand(pad_to - len(images), *batch.shape[1:])])
        return torch.sigmoid(self.logits(batch))[: len(images), 0].cpu().numpy()

    def full_mask(self, small: np.ndarray, height: int, width: int) -> np.ndarray:
        """One image's mask at its own size: its small probability map resized back, then thresholded."""
        return resize_probabilities(small, height, width) >= self.threshold

    def probabilities(self, images: Sequence[np.ndarray], *, pad_to: int = 0) -> list[np.ndarray]:
        """Per image, a float32 probability map at the image's own height and width (``pad_to`` as above)."""
        if not images:
            return []
        small = self.small_probabilities(images, pad_to=pad_to)
        return [resize_probabilities(p, *image.shape[:2]) for p, image in zip(small, images)]

    def masks(self, images: Sequence[np.ndarray], *, pad_to: int = 0) -> list[np.ndarray]:
        """Per image, a boolean mask at the image's own size (probability >= threshold); ``pad_to`` as above."""
        if not images:
            return []
        small = self.small_probabilities(images, pad_to=pad_to)
        return [self.full_mask(p, *image.shape[:2]) for p, image in zip(small, images)]

    def predict_all(self, images: Iterable[np.ndarray], batch_size: int = 8) -> Iterator[np.ndarray]:
        """Masks for a stream of images, ``batch_size`` at a time, in order.

        A compiled model gets the last, smaller batch padded to ``batch_size``: a new batch shape would make it
        compile again (as long as the first compilation) for a handful of images.
        """
        pad_to = batch_size if self.compiled else 0
        pending: list[np.ndarray] = []
        for image in images:
            pending.append(image)
            if len(pending) == batch_size:
                yield from self.masks(pending)
                pending = []
        if pending:
            yield from self.masks(pending, pad_to=pad_to)
