"""Reading images and masks from files: RGB uint8 images, boolean masks binarised at 128."""

from __future__ import annotations

import warnings
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image

from medico.errors import MedicoError
from medico.files import is_file

__all__ = [
    "IMAGE_SUFFIXES",
    "MASK_THRESHOLD",
    "MAX_PIXELS",
    "ImageReadError",
    "ImageSource",
    "image_size",
    "list_images",
    "read_grey",
    "read_mask",
    "read_rgb",
]

ImageSource = Path | str | bytes
"""A file path, or the bytes of an encoded image (a member of a zip archive)."""

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
MASK_THRESHOLD = 128
"""Kvasir-SEG masks are JPEG: grey values at or above 128 are polyp, JPEG noise around 0 and 255 is ignored."""
MAX_PIXELS = 64_000_000
"""Larger images are refused as decompression bombs (Kvasir-SEG's largest frame is 1920x1072 = 2 Mpx)."""


class ImageReadError(MedicoError):
    """An image or mask file is unreadable, truncated, or too large."""


def _open(source: ImageSource, label: str | None = None, *, decode: bool = True) -> Image.Image:
    """Open ``source``; refuse decompression-bomb sizes from the header, then decode unless ``decode`` is False."""
    label = label if label is not None else ("<bytes>" if isinstance(source, bytes) else str(source))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(BytesIO(source) if isinstance(source, bytes) else Path(source))
        if image.width * image.height > MAX_PIXELS:
            image.close()
            raise ImageReadError(
                f"{label}: {image.width}x{image.height} exceeds {MAX_PIXELS:,} pixels (decompression bomb?)"
            )
        if decode:
            image.load()
        return image
    except ImageReadError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageReadError(f"{label}: cannot read image ({type(error).__name__}: {error})") from error


def read_rgb(path: ImageSource, *, label: str | None = None) -> np.ndarray:
    """An image file (or its bytes) as RGB uint8 ``(H, W, 3)``; grey and RGBA images are converted.

    ``label`` names the image in error messages (default: the path).
    """
    return np.asarray(_open(path, label).convert("RGB"))


def read_grey(path: ImageSource, *, label: str | None = None) -> np.ndarray:
    """A mask file (or its bytes) as its grey values ``(H, W)`` before thresholding.

    Colour masks are converted to luminance; 1-bit masks become 0/255 (their True pixels are polyp).
    """
    image = _open(path, label)
    return np.asarray(image.convert("L") if image.mode not in ("L", "I", "I;16") else image)


def read_mask(path: ImageSource, threshold: int = MASK_THRESHOLD, *, label: str | None = None) -> np.ndarray:
    """A mask file (or its bytes) as boolean ``(H, W)``: grey value >= ``threshold``."""
    return read_grey(path, label=label) >= threshold


def image_size(path: ImageSource, *, label: str | None = None) -> tuple[int, int]:
    """``(height, width)`` read from the file header, without decoding pixels."""
    with _open(path, label, decode=False) as image:
        return image.height, image.width


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (by suffix, case-insensitive), sorted by name; hidden files skipped.

    Raises:
        MedicoError: ``folder`` is not a folder, or holds no image (every caller needs at least one).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MedicoError(f"{folder}: not a folder of images")
    images = sorted(
        p for p in folder.iterdir() if not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES and is_file(p)
    )
    if not images:
        raise MedicoError(f"{folder}: no images found (expected files ending in {', '.join(IMAGE_SUFFIXES)})")
    return images
