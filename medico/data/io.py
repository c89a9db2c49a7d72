"""Reading image files: RGB uint8 images, 16-bit files scaled to 8 bits, sizes from headers (masks: :mod:`.masks`)."""

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
    "MAX_PIXELS",
    "ImageReadError",
    "ImageSource",
    "image_size",
    "list_images",
    "open_image",
    "read_rgb",
    "source_label",
    "to_8bit",
]

ImageSource = Path | str | bytes
"""A file path, or the bytes of an encoded image (a member of a zip archive)."""

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
MAX_PIXELS = 64_000_000
"""Larger images are refused as decompression bombs (Kvasir-SEG's largest frame is 1920x1072 = 2 Mpx)."""


class ImageReadError(MedicoError):
    """An image or mask file is unreadable, truncated, or too large."""


def source_label(source: ImageSource) -> str:
    """How messages name an image given as a path (the path) or as bytes (``<bytes>``)."""
    return "<bytes>" if isinstance(source, bytes) else str(source)


def open_image(source: ImageSource, label: str | None = None, *, decode: bool = True) -> Image.Image:
    """Open ``source``; refuse decompression-bomb sizes from the header, then decode unless ``decode`` is False."""
    label = label if label is not None else source_label(source)
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


_WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")
"""Greyscale modes wider than 8 bits: 16-bit PNG and TIFF files (and 32-bit integer TIFFs)."""


def to_8bit(image: Image.Image, label: str) -> Image.Image:
    """``image`` with a 16-bit (or 32-bit integer) greyscale brought to 8 bits by scaling, never by clipping.

    Values are divided by 257 (65535 -> 255) when any exceeds 255; a file whose values all fit in 8 bits keeps
    them (8-bit values stored in a wider file, such as a 0/1 mask). Other modes are returned unchanged.

    Raises:
        ImageReadError: a 32-bit file with values outside 0..65535 (no 8-bit reading of it is meaningful).
    """
    if image.mode not in _WIDE_MODES:
        return image
    values = np.asarray(image)
    low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
    if low < 0 or high > 65535:
        raise ImageReadError(f"{label}: mode {image.mode} values range from {low} to {high}, expected 0..65535")
    if high > 255:
        values = np.round(values / 257.0)
    return Image.fromarray(values.astype(np.uint8))


def read_rgb(path: ImageSource, *, label: str | None = None) -> np.ndarray:
    """An image file (or its bytes) as RGB uint8 ``(H, W, 3)``; grey, 16-bit and RGBA images are converted.

    ``label`` names the image in error messages (default: the path).
    """
    label = label if label is not None else source_label(path)
    return np.asarray(to_8bit(open_image(path, label), label).convert("RGB"))


def image_size(path: ImageSource, *, label: str | None = None) -> tuple[int, int]:
    """``(height, width)`` read from the file header, without decoding pixels."""
    with open_image(path, label, decode=False) as image:
        return image.height, image.width


def _images_in(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (by suffix, case-insensitive), sorted by name; hidden files skipped."""
    return sorted(
        p for p in folder.iterdir() if not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES and is_file(p)
    )


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (by suffix, case-insensitive), sorted by name; hidden files skipped.

    Raises:
        MedicoError: ``folder`` is not a folder, or holds no image (every caller needs at least one); where its
            ``images/`` subfolder holds images (a dataset's top, as the Medico 2020 test set unpacks), it names that.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MedicoError(f"{folder}: not a folder of images")
    images = _images_in(folder)
    if not images:
        inner = folder / "images"
        count = len(_images_in(inner)) if inner.is_dir() else 0
        hint = f"; did you mean {inner} ({count} image{'' if count == 1 else 's'})?" if count else ""
        raise MedicoError(f"{folder}: no images found (expected files ending in {', '.join(IMAGE_SUFFIXES)}){hint}")
    return images
