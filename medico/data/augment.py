"""Training augmentation after the source paper, with albumentations: the same geometry for image and mask.

Horizontal and vertical flips, rotation in [-5, 5] degrees, an elastic transform, a channel shift and a sun
flare, each with its own probability. Geometric transforms sample masks with nearest-neighbour
interpolation, so a mask stays binary. The pipeline owns its random generator: seeded, reproducible, and
reseeded per item by the training set (see :class:`medico.data.loader.PolypTrainingSet`).
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np

__all__ = ["augment", "training_augmentation"]


def training_augmentation(size: int, *, seed: int = 0) -> A.Compose:
    """The augmentation pipeline for ``size`` x ``size`` training crops, seeded with ``seed``."""
    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            A.Rotate(limit=(-5, 5), border_mode=cv2.BORDER_REFLECT_101, p=0.5),
            # sigma >= 1: albumentations refuses less (inputs under 25 pixels)
            A.ElasticTransform(
                alpha=size * 0.25, sigma=max(size * 0.04, 1.0), border_mode=cv2.BORDER_REFLECT_101, p=0.25
            ),
            A.RGBShift(r_shift_limit=15, g_shift_limit=15, b_shift_limit=15, p=0.3),
            A.RandomSunFlare(
                flare_roi=(0.0, 0.0, 1.0, 0.5),
                src_radius=max(size // 4, 8),
                num_flare_circles_range=(3, 6),
                p=0.1,
            ),
        ],
        seed=seed,
    )


def augment(pipeline: A.Compose, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``pipeline`` to an RGB uint8 image and its bool mask; returns uint8 ``(S, S, 3)`` and bool ``(S, S)``."""
    out = pipeline(image=image, mask=mask.astype(np.uint8))
    return np.ascontiguousarray(out["image"]), out["mask"].astype(bool)
