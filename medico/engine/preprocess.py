"""The model input convention, shared by training, evaluation, prediction and benchmarks.

Images are RGB uint8 ``(H, W, 3)``; they are resized to the model's square input size with area
interpolation (the right filter for shrinking 1920x1072 frames), batched as uint8 and normalised to [-1, 1] on
the device the model runs on (a quarter of the bytes of float32 cross from loader workers and to a GPU).
Probabilities are resized back to the original size bilinearly, then thresholded: never threshold first and
resize a mask.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

__all__ = ["normalize", "resize_image", "resize_mask", "resize_probabilities", "to_tensor"]


def resize_image(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize an ``(H, W, 3)`` uint8 image to ``size`` (square side, or (height, width)) with area filtering."""
    height, width = (size, size) if isinstance(size, int) else size
    if image.shape[:2] == (height, width):
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def resize_mask(mask: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize a boolean/0-1 mask for training targets: area-average then >= 0.5, so thin shapes do not vanish."""
    height, width = (size, size) if isinstance(size, int) else size
    if mask.shape[:2] == (height, width):
        return mask.astype(bool)
    resized = cv2.resize(mask.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
    return resized >= 0.5


def normalize(batch: torch.Tensor) -> torch.Tensor:
    """uint8 images ``(..., 3, H, W)`` -> float32 in [-1, 1], on the tensor's own device and in its layout."""
    return batch.to(torch.float32, copy=True).div_(127.5).sub_(1.0)  # one new tensor, the same values


def to_tensor(images: list[np.ndarray], size: int | tuple[int, int]) -> torch.Tensor:
    """A uint8 batch ``(B, 3, S, S)`` of resized images (channels_last strides: no copy), for :func:`normalize`."""
    return torch.from_numpy(np.stack([resize_image(image, size) for image in images])).permute(0, 3, 1, 2)


def resize_probabilities(probabilities: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an ``(h, w)`` float probability map back to ``(height, width)`` bilinearly."""
    if probabilities.shape == (height, width):
        return probabilities
    return cv2.resize(probabilities.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
