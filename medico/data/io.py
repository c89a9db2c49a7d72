"""Reading images and masks from files: RGB uint8 images, boolean masks binarised at 128."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from medico.errors import MedicoError

__all__ = [
    "IMAGE_SUFFIXES",
    "MASK_THRESHOLD",
    "MAX_PIXELS",
    "ImageReadError",
    "list_images",
    "read_mask",
    "read_rgb",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
MASK_THRESHOLD = 128
"""Kvasir-SEG masks are JPEG: grey values at or above 128 are polyp, JPEG noise around 0 and 255 is ignored."""
MAX_PIXELS = 64_000_000
"""Larger images are refused as decompression bombs (Kvasir-SEG's largest frame is 1920x1072 = 2 Mpx)."""


class ImageReadError(MedicoError):
    """An image or mask file is unreadable, truncated, or too large."""


def _open(path: Path) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            if image.width * image.height > MAX_PIXELS:
                raise ImageReadError(
                    f"{path}: {image.width}x{image.height} exceeds {MAX_PIXELS:,} pixels (decompression bomb?)"
                )
            image.load()
        return image
    except ImageReadError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageReadError(f"{path}: cannot read image ({type(error).__name__}: {error})") from error


def read_rgb(path: Path) -> np.ndarray:
    """An image file as RGB uint8 ``(H, W, 3)``; grey and RGBA images are converted."""
    return np.asarray(_open(Path(path)).convert("RGB"))


def read_mask(path: Path, threshold: int = MASK_THRESHOLD) -> np.ndarray:
    """A mask file as boolean ``(H, W)``: grey value (first channel of RGB masks) >= ``threshold``."""
    image = _open(Path(path))
    grey = image.convert("L") if image.mode not in ("L", "1", "I", "I;16") else image
    return np.asarray(grey) >= threshold


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (by suffix, case-insensitive), sorted by name; hidden files skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MedicoError(f"{folder}: not a folder of images")
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )
