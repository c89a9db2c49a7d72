"""Overlays like the source paper's Figure 3: ground truth outlined in green, prediction outlined in red.

Outlines (not filled masks) keep the mucosa visible under both shapes; their thickness grows with the image so
they stay visible on 1920x1072 frames and on thumbnails alike. Contact sheets tile captioned overlays in a grid.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from medico.evaluation import write_atomic
from medico.preprocess import resize_image

__all__ = ["PREDICTION_COLOUR", "TRUTH_COLOUR", "contact_sheet", "draw_overlay", "outline", "save_png"]

TRUTH_COLOUR = (0, 255, 0)
PREDICTION_COLOUR = (255, 0, 0)


def _thickness(height: int, width: int) -> int:
    return max(1, round(min(height, width) / 150))


def outline(mask: np.ndarray, thickness: int = 1) -> np.ndarray:
    """The boundary pixels of a boolean mask, ``thickness`` pixels wide, inside the shape (bool, same shape)."""
    mask = np.asarray(mask, dtype=bool)
    kernel = np.ones((2 * thickness + 1, 2 * thickness + 1), np.uint8)
    padded = np.pad(mask.astype(np.uint8), thickness, constant_values=0)  # shapes touching the border get an edge
    eroded = cv2.erode(padded, kernel)[thickness:-thickness, thickness:-thickness].astype(bool)
    return mask & ~eroded


def draw_overlay(
    image: np.ndarray,
    truth: np.ndarray | None = None,
    prediction: np.ndarray | None = None,
    *,
    thickness: int | None = None,
) -> np.ndarray:
    """A copy of the RGB uint8 ``image`` with the ground truth outlined green and the prediction red (on top).

    Args:
        image: ``(H, W, 3)`` uint8.
        truth: boolean ``(H, W)`` ground truth, or None.
        prediction: boolean ``(H, W)`` predicted mask, or None.
        thickness: outline width in pixels; by default about 1/150 of the image's shorter side.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image: expected an RGB array (H, W, 3), got shape {image.shape}")
    width = thickness or _thickness(*image.shape[:2])
    result = image.copy()
    for mask, colour, name in ((truth, TRUTH_COLOUR, "truth"), (prediction, PREDICTION_COLOUR, "prediction")):
        if mask is None:
            continue
        if mask.shape != image.shape[:2]:
            raise ValueError(
                f"{name}: expected a mask of the image's size {image.shape[1]}x{image.shape[0]}, "
                f"got {mask.shape[1]}x{mask.shape[0]} (width x height)"
            )
        result[outline(mask, width)] = colour
    return result


def _caption(tile: np.ndarray, text: str) -> np.ndarray:
    """The tile with ``text`` on a dark band below it."""
    band = np.zeros((22, tile.shape[1], 3), np.uint8)
    cv2.putText(band, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([tile, band])


def contact_sheet(
    images: Sequence[np.ndarray], captions: Sequence[str] | None = None, *, columns: int = 4, tile: int = 256
) -> np.ndarray:
    """Images resized to fit ``tile`` x ``tile`` (aspect kept, padded black), captioned, in a grid of ``columns``."""
    if not images:
        raise ValueError("contact_sheet: no images to tile")
    captions = list(captions) if captions is not None else [""] * len(images)
    if len(captions) != len(images):
        raise ValueError(f"captions: expected {len(images)} captions, one per image, got {len(captions)}")
    tiles = []
    for image, caption in zip(images, captions):
        height, width = image.shape[:2]
        scale = tile / max(height, width)
        small = resize_image(image, (max(1, round(height * scale)), max(1, round(width * scale))))
        cell = np.zeros((tile, tile, 3), np.uint8)
        top, left = (tile - small.shape[0]) // 2, (tile - small.shape[1]) // 2
        cell[top : top + small.shape[0], left : left + small.shape[1]] = small
        tiles.append(_caption(cell, caption))
    columns = max(1, min(columns, len(tiles)))
    blank = np.zeros_like(tiles[0])
    tiles += [blank] * (-len(tiles) % columns)
    rows = [np.concatenate(tiles[i : i + columns], axis=1) for i in range(0, len(tiles), columns)]
    return np.concatenate(rows, axis=0)


def save_png(path: Path, array: np.ndarray) -> Path:
    """Write an RGB ``(H, W, 3)`` or grey ``(H, W)`` uint8 array as a PNG, atomically."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    return write_atomic(Path(path), buffer.getvalue())
