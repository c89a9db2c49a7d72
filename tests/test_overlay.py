"""Overlays: green ground-truth outline, red prediction outline, contact sheets, PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medico.overlay import PREDICTION_COLOUR, TRUTH_COLOUR, contact_sheet, draw_overlay, outline, save_png


def square(size: int, top: int, left: int, side: int) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[top : top + side, left : left + side] = True
    return mask


def test_an_outline_is_the_shapes_border_only() -> None:
    edge = outline(square(10, 2, 2, 5))
    assert edge.sum() == 16  # the 5x5 square's ring
    assert not edge[4, 4] and edge[2, 2] and not edge[1, 1]


def test_a_shape_touching_the_image_border_is_outlined_there_too() -> None:
    assert outline(np.ones((6, 6), dtype=bool)).sum() == 20


def test_truth_is_green_prediction_red_and_the_rest_untouched() -> None:
    image = np.full((40, 40, 3), 100, dtype=np.uint8)
    truth, pred = square(40, 5, 5, 20), square(40, 15, 15, 20)
    overlay = draw_overlay(image, truth, pred, thickness=1)
    assert tuple(overlay[5, 10]) == TRUTH_COLOUR
    assert tuple(overlay[34, 20]) == PREDICTION_COLOUR
    assert tuple(overlay[10, 10]) == (100, 100, 100)  # inside the truth, off both outlines
    assert tuple(overlay[0, 0]) == (100, 100, 100)
    assert (image == 100).all()  # the input image is not modified


def test_outlines_thicken_on_large_images() -> None:
    image = np.zeros((900, 900, 3), dtype=np.uint8)
    overlay = draw_overlay(image, square(900, 100, 100, 500))
    assert (overlay[:, 300] == TRUTH_COLOUR).all(axis=-1).sum() == 2 * 6


def test_a_mask_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match=r"prediction.*30x20.*20x30"):
        draw_overlay(np.zeros((20, 30, 3), np.uint8), prediction=np.zeros((30, 20), bool))


def test_a_contact_sheet_tiles_captioned_images_in_a_grid() -> None:
    images = [np.full((h, w, 3), 255, np.uint8) for h, w in [(50, 100), (100, 50), (64, 64)]]
    sheet = contact_sheet(images, ["a", "b", "c"], columns=2, tile=64)
    band = 2 * 16 + 6
    assert sheet.shape == (2 * (64 + band), 2 * 64, 3)
    assert (sheet[64 + band :, 64:] == 0).all()  # the fourth cell is blank
    with pytest.raises(ValueError, match="captions"):
        contact_sheet(images, ["a"])


def test_save_png_writes_the_array_exactly(tmp_path: Path) -> None:
    array = np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    path = save_png(tmp_path / "sub" / "x.png", array)
    assert (np.asarray(Image.open(path)) == array).all()
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["x.png"]
