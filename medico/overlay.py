"""Overlays like the source paper's Figure 3: ground truth outlined in green, prediction outlined in red.

Outlines (not filled masks) keep the mucosa visible under both shapes; their thickness grows with the image so
they stay visible on 1920x1072 frames and on thumbnails alike. Contact sheets tile captioned overlays in a grid.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from medico.engine.evaluation import ImageSource
from medico.engine.inference import Predictor
from medico.engine.preprocess import resize_image
from medico.files import write_atomic

__all__ = [
    "CONTACT_SHEET",
    "PREDICTION_COLOUR",
    "TRUTH_COLOUR",
    "best_and_worst",
    "contact_sheet",
    "draw_overlay",
    "outline",
    "save_png",
    "write_overlays",
]

CONTACT_SHEET = "contact_sheet.png"

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


_CAPTION_LINES = 2
_LINE_HEIGHT = 16


def _caption(tile: np.ndarray, text: str) -> np.ndarray:
    """The tile with up to two lines of ``text`` on a dark band below it."""
    band = np.zeros((_CAPTION_LINES * _LINE_HEIGHT + 6, tile.shape[1], 3), np.uint8)
    for index, line in enumerate(text.splitlines()[:_CAPTION_LINES]):
        baseline = (index + 1) * _LINE_HEIGHT
        cv2.putText(band, line, (4, baseline), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([tile, band])


def contact_sheet(
    images: Sequence[np.ndarray], captions: Sequence[str] | None = None, *, columns: int = 4, tile: int = 256
) -> np.ndarray:
    """Images resized to fit ``tile`` x ``tile`` (aspect kept, padded black), in a grid of ``columns``.

    Each caption (up to two lines) is written on a band below its image.
    """
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


def save_png(path: Path, array: np.ndarray, *, replace: bool = False) -> Path:
    """Write an RGB ``(H, W, 3)`` or grey ``(H, W)`` uint8 array as a PNG, atomically; an existing file is
    replaced only with ``replace`` (see :func:`medico.files.atomic_path`)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    return write_atomic(Path(path), buffer.getvalue(), replace=replace)


def best_and_worst(per_image: pd.DataFrame, count: int) -> list[tuple[str, pd.Series]]:
    """Up to ``count`` best rows (highest IoU, then Dice) and up to ``count`` worst others, worst first.

    Returns ``("best" | "worst", row)`` pairs; an image is never both.
    """
    if count < 1:
        raise ValueError(f"count: expected at least 1, got {count}")
    missing = {"name", "iou", "dice"} - set(per_image.columns)
    if missing:
        raise ValueError(f"per-image scores: missing columns {', '.join(sorted(missing))}")
    ranked = per_image.sort_values(["iou", "dice", "name"], ascending=[False, False, True], kind="stable")
    best = ranked.head(count)
    worst = ranked.iloc[len(best) :].tail(count).iloc[::-1]
    return [("best", row) for _, row in best.iterrows()] + [("worst", row) for _, row in worst.iterrows()]


def write_overlays(
    predictor: Predictor,
    dataset: ImageSource,
    chosen: Sequence[tuple[str, pd.Series]],
    folder: Path,
    *,
    replace: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """One overlay PNG per chosen row (``best-01-NAME.png``...) and a captioned contact sheet of them all.

    Existing files are replaced only with ``replace``. Returns the written paths, the contact sheet last.
    """
    folder = Path(folder)
    paths, tiles, captions = [], [], []
    rank = {"best": 0, "worst": 0}
    for label, row in chosen:
        rank[label] += 1
        name = str(row["name"])
        image = dataset.read_image(name)
        [prediction] = predictor.masks([image])
        overlay = draw_overlay(image, dataset.read_mask(name), prediction)
        paths.append(save_png(folder / f"{label}-{rank[label]:02d}-{name}.png", overlay, replace=replace))
        tiles.append(overlay)
        captions.append(f"{label} {rank[label]}: IoU {row['iou']:.3f} Dice {row['dice']:.3f}\n{name}")
        if progress is not None:
            progress(len(paths), len(chosen))
    paths.append(save_png(folder / CONTACT_SHEET, contact_sheet(tiles, captions), replace=replace))
    return paths
