"""The run record's training curve: a PNG drawn by matplotlib, the training loss above and the validation Dice and
mIoU below."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from medico.engine.training import EpochRecord
from medico.runs.record import write_training_curve


def _epoch(epoch: int, loss: float, dice: float, iou: float) -> EpochRecord:
    return EpochRecord(epoch=epoch, train_loss=loss, val_dice=dice, val_iou=iou, lr=1e-4, seconds=1.0,
                       images_per_second=10.0, best=True)


def _has_colour(pixels: np.ndarray, colour: tuple[int, int, int]) -> bool:
    return bool((np.abs(pixels.astype(int) - colour).sum(axis=-1) < 30).sum() > 50)


def test_the_training_curve_shows_the_loss_above_and_the_validation_scores_below(tmp_path: Path) -> None:
    history = [_epoch(1, 0.9, 0.5, 0.4), _epoch(2, 0.6, 0.7, 0.55), _epoch(3, 0.4, 0.8, 0.7)]
    path = write_training_curve(tmp_path / "training_curve.png", history, "1-unet")
    with Image.open(path) as curve:
        assert curve.format == "PNG" and curve.width >= 700 and curve.height >= 500
        pixels = np.asarray(curve.convert("RGB"))
    top, bottom = pixels[: pixels.shape[0] // 2], pixels[pixels.shape[0] // 2 :]
    loss, dice, iou = (200, 60, 40), (30, 110, 200), (40, 160, 80)
    assert _has_colour(top, loss) and not _has_colour(bottom, loss)
    assert _has_colour(bottom, dice) and _has_colour(bottom, iou) and not _has_colour(top, dice)


def test_a_single_epoch_draws_a_curve_too(tmp_path: Path) -> None:
    path = write_training_curve(tmp_path / "training_curve.png", [_epoch(1, 0.7, 0.3, 0.2)])
    with Image.open(path) as curve:
        assert curve.format == "PNG"
