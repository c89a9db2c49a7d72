"""Reading a mask as the Medico 2020 organisers' evaluation script reads it, and refusing what it would misread.

Their rule: greyscale; divided by 255 only when the maximum exceeds 127; then values above 0.5 are polyp. So
0/255 and 0/1 PNGs both work, and JPEG masks are cut at 128 (``v / 255 > 0.5`` is ``v >= 128``). 16-bit files
are first brought to 8 bits by :func:`medico.data.io.to_8bit` (scaled, never clipped).

A mask that rule would silently misread is refused, naming the file and what was found:

* colour: channels that differ by more than :data:`CHANNEL_TOLERANCE` (the luminance of pure red is 76, so a
  red-on-black mask would read as empty);
* alpha-only: an alpha channel that outlines another mask than the grey values (grey readers drop alpha);
* many levels: more than :data:`NON_BINARY_FRACTION` of the pixels farther than :data:`NOISE_LEVELS` (on the
  0..255 scale of the mask's own darkest-to-brightest range) from both its darkest and its brightest value: a
  probability map or a photo, not two classes with noise.

Margins, measured: the 1,000 Kvasir-SEG masks (JPEG, decoded as RGB) have equal channels at every pixel and
every value within 8 of 0 or 255 (0 of 352,050,894 pixels in 9..245), so noise of 32 levels is 4x the worst
seen. A 0/255 mask saved as JPEG at quality 50 puts at most 2.7% of its pixels beyond 32 levels (a 40x30
rectangle; 0.7% at 622x529, 0.2% at quality 75), so 5% refuses no JPEG mask, while a photo or a blurred
probability map has most of its pixels there.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageChops

from medico.data.io import ImageReadError, ImageSource, open_image, source_label, to_8bit

__all__ = [
    "CHANNEL_TOLERANCE",
    "MASK_RULE",
    "NOISE_LEVELS",
    "NON_BINARY_FRACTION",
    "NotBinaryMaskError",
    "binary_mask",
    "read_mask",
]

MASK_RULE = (
    "greyscale (16-bit scaled to 8 bits); divided by 255 only when the maximum exceeds 127; values above 0.5 "
    "are polyp (0/255 and 0/1 masks both work, JPEG masks are cut at 128); colour, alpha-only and many-level "
    "masks are refused"
)
"""How masks are read, as written into every result's metric policy."""
CHANNEL_TOLERANCE = 32
"""A colour-mode mask counts as grey when its channels differ by at most this much at every pixel."""
NOISE_LEVELS = 32
"""Values within this many levels (of 255) of a mask's darkest or brightest value are noise around it."""
NON_BINARY_FRACTION = 0.05
"""A mask with more than this fraction of its pixels beyond :data:`NOISE_LEVELS` of both extremes is refused."""
_GREY_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N")


class NotBinaryMaskError(ImageReadError):
    """A mask the organisers' rule cannot read as two classes; ``found`` says what it holds instead."""

    def __init__(self, label: str, found: str) -> None:
        super().__init__(f"{label}: not binary: {found}")
        self.found = found


def _above(values: np.ndarray, bound: float) -> np.ndarray:
    """``values > bound``; whole-number values are compared with ``floor(bound)`` (the same pixels), so that no
    pixel is converted to float on the way."""
    return values > (math.floor(bound) if values.dtype.kind in "ui" else bound)


def _below(values: np.ndarray, bound: float) -> np.ndarray:
    """``values < bound``, whole-number values compared with ``ceil(bound)`` (see :func:`_above`)."""
    return values < (math.ceil(bound) if values.dtype.kind in "ui" else bound)


def _cut(values: np.ndarray) -> np.ndarray:
    """The organisers' rule on grey values: ``/255`` only when the maximum exceeds 127, then ``> 0.5``."""
    return _above(values, 127.5 if values.max() > 127 else 0.5)


def _refuse_colour(image: Image.Image, label: str, mode: str) -> None:
    """Refuse an RGB(A) image whose channels differ by more than :data:`CHANNEL_TOLERANCE` at any pixel."""
    red, green, blue = image.split()[:3]
    if red.tobytes() == green.tobytes() == blue.tobytes():
        return  # grey stored as colour (every Kvasir-SEG mask): equal channels, nothing to measure
    pairs = ((red, green), (green, blue), (red, blue))
    if max(ImageChops.difference(a, b).getextrema()[1] for a, b in pairs) <= CHANNEL_TOLERANCE:
        return
    rgb = np.asarray(image.convert("RGB"))
    differing = int((rgb.max(axis=-1) - rgb.min(axis=-1) > CHANNEL_TOLERANCE).sum())
    raise NotBinaryMaskError(
        label, f"colour mask (mode {mode}: {differing:,} pixels whose channels differ by more than {CHANNEL_TOLERANCE})"
    )


def _grey_and_alpha(image: Image.Image, label: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The grey values (8-bit scale) and the alpha channel where there is one; colour is refused."""
    if image.mode in _GREY_MODES:
        return np.asarray(to_8bit(image, label).convert("L")), None
    if image.mode == "F":
        values = np.asarray(image)
        if not np.isfinite(values).all():
            raise NotBinaryMaskError(label, "mode F with NaN or infinite values")
        return values, None
    has_alpha = bool({"A", "a"} & set(image.getbands())) or "transparency" in image.info
    mode = "RGBA" if has_alpha else "RGB"
    try:
        colour = image if image.mode == mode else image.convert(mode)
    except ValueError as error:
        raise NotBinaryMaskError(label, f"mode {image.mode} has no grey reading ({error})") from error
    _refuse_colour(colour, label, image.mode)
    return np.asarray(colour.convert("L")), np.asarray(colour.getchannel("A")) if has_alpha else None


def _refuse_many_levels(grey: np.ndarray, label: str) -> None:
    low, high = float(grey.min()), float(grey.max())
    margin = NOISE_LEVELS * (high - low) / 255
    far = _above(grey, low + margin) & _below(grey, high - margin)
    fraction = np.count_nonzero(far) / far.size
    if fraction > NON_BINARY_FRACTION:
        levels = len(np.unique(grey[far]))
        raise NotBinaryMaskError(
            label, f"{fraction:.1%} of pixels hold {levels:,} grey levels between its darkest ({low:g}) and "
            f"brightest ({high:g}) values, at most {NON_BINARY_FRACTION:.0%} may (a probability map or a photo?)"
        )


def binary_mask(image: Image.Image, label: str) -> np.ndarray:
    """A decoded mask image as boolean ``(H, W)`` by the organisers' rule (see the module docstring).

    Raises:
        NotBinaryMaskError: colour, alpha-only or many-level masks, naming ``label`` and what was found.
        ImageReadError: a 32-bit mask with values outside 0..65535.
    """
    grey, alpha = _grey_and_alpha(image, label)
    _refuse_many_levels(grey, label)
    mask = _cut(grey)
    if alpha is not None and alpha.min() != alpha.max():
        differ = int((_cut(alpha) != mask).sum())
        if differ and grey.min() == grey.max():
            raise NotBinaryMaskError(
                label, f"alpha-only mask (mode {image.mode}: every grey value is {grey.min()}, the shape is drawn "
                "in the alpha channel, which grey readers drop)"
            )
        if differ:
            raise NotBinaryMaskError(
                label, f"mode {image.mode}: the alpha channel outlines another mask than the grey values "
                f"({differ:,} pixels differ; grey readers drop alpha)"
            )
    return mask


def read_mask(source: ImageSource, *, label: str | None = None) -> np.ndarray:
    """A mask file (or its bytes) as boolean ``(H, W)``, read as the organisers read it.

    ``label`` names the file in error messages (default: the path).

    Raises:
        ImageReadError: unreadable or oversized file, or (:class:`NotBinaryMaskError`) not a binary mask.
    """
    label = label if label is not None else source_label(source)
    return binary_mask(open_image(source, label), label)
