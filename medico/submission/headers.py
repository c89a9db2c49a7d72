"""What an encoded mask declares before it is decoded: its format and size, and how much structure it carries.

Pillow reads a PNG's chunks and a JPEG's segments before its first scan one at a time in Python, a few microseconds
each: a 2 MB mask padded with 200,000 empty chunks (deflated to a few kB in the zip) takes half a second to open,
minutes for an archive of 160. :func:`mask_header` walks that structure itself and stops at the first bound passed,
so a mask is refused after at most a few thousand steps, and its size is known before Pillow sees a byte. What
libjpeg reads after the first scan it reads in C, fast, except scans themselves (each a pass over the image).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Literal

from medico.errors import MedicoError

__all__ = [
    "MAX_JPEG_FILL",
    "MAX_JPEG_SCANS",
    "MAX_JPEG_SEGMENTS",
    "MAX_METADATA_BYTES",
    "MAX_METADATA_CHUNKS",
    "MAX_PNG_CHUNKS",
    "Header",
    "MaskHeaderError",
    "mask_header",
]

MAX_PNG_CHUNKS = 512
"""Chunks a PNG mask may hold: 4 MB of image data in libpng's 8 kB chunks (a binary mask needs a handful)."""
MAX_METADATA_CHUNKS = 32
"""Ancillary PNG chunks (text, colour profile, ...) or JPEG APPn/COM segments a mask may hold (encoders write a few)."""
MAX_METADATA_BYTES = 256 * 2**10
"""Bytes those may hold in all (an sRGB profile takes 3 kB, a camera's a few hundred: a mask needs none)."""
MAX_JPEG_SEGMENTS = 64
"""Segments a JPEG mask may hold before its first scan (tables and metadata: about ten in a camera's JPEG)."""
MAX_JPEG_SCANS = 100
"""The most scans a JPEG mask may hold (libjpeg's progressive JPEGs have 6 for grey, 10 for colour): each scan is a
pass over every block of the image, and 50,000 scans (1 MB) take 11 s to decode at 720x576: half an hour of the
scoring worker's time for an archive of 160 masks."""

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOI = b"\xff\xd8"
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}
"""Markers without a length (TEM, RSTn)."""
_FILL = re.compile(rb"\xff+(?=[^\xff])")
MAX_JPEG_FILL = 1024
"""Fill bytes (0xFF before a marker) a JPEG mask may hold before its first scan: Pillow skips each in Python."""


class MaskHeaderError(MedicoError):
    """A mask refused from its structure: ``rule`` is the validator's (``unreadable`` or ``padded``), ``detail``
    what was found."""

    def __init__(self, rule: Literal["unreadable", "padded"], detail: str) -> None:
        super().__init__(detail)
        self.rule, self.detail = rule, detail


@dataclass(frozen=True)
class Header:
    """An encoded mask's format and declared size."""

    format: Literal["PNG", "JPEG"]
    width: int
    height: int


def mask_header(data: bytes) -> Header:
    """The format and size ``data`` declares, after checking its structure is within the bounds above.

    Raises:
        MaskHeaderError: not a PNG or JPEG, no size declared, or more chunks, segments, scans or metadata than
            the bounds allow.
    """
    if data.startswith(_PNG_SIGNATURE):
        return _png(data)
    if data.startswith(_JPEG_SOI):
        return _jpeg(data)
    raise MaskHeaderError("unreadable", "not a PNG or JPEG image")


def _metadata(count: int, size: int, kind: str) -> None:
    if count > MAX_METADATA_CHUNKS:
        raise MaskHeaderError("padded", f"more than {MAX_METADATA_CHUNKS} {kind}")
    if size > MAX_METADATA_BYTES:
        raise MaskHeaderError("padded", f"{kind} of more than {MAX_METADATA_BYTES:,} bytes")


def _png(data: bytes) -> Header:
    """The IHDR's size; chunks counted up to IEND (or the end of the data: Pillow names a truncation)."""
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise MaskHeaderError("unreadable", "a PNG without its IHDR header")
    width, height = struct.unpack_from(">II", data, 16)
    position, chunks, ancillary, ancillary_bytes = 8, 0, 0, 0
    while position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        chunks += 1
        if chunks > MAX_PNG_CHUNKS:
            raise MaskHeaderError("padded", f"a PNG of more than {MAX_PNG_CHUNKS:,} chunks")
        if kind[0] & 0x20:  # a lower-case first letter: ancillary
            ancillary, ancillary_bytes = ancillary + 1, ancillary_bytes + length
            _metadata(ancillary, ancillary_bytes, "ancillary PNG chunks")
        if kind == b"IEND":
            break
        position += 12 + length
    return Header("PNG", width, height)


def _jpeg(data: bytes) -> Header:
    """The SOFn's size; segments counted up to the first scan, scans counted by their markers (0xFFDA never occurs
    in entropy-coded data, where a 0xFF byte is followed by 0x00)."""
    position, segments, fill, metadata, metadata_bytes = 2, 0, 0, 0, 0
    size: tuple[int, int] | None = None
    while True:
        run = _FILL.match(data, position)  # a marker's 0xFF and any fill bytes before it, skipped at C speed
        if run is None or run.end() + 3 > len(data):
            raise MaskHeaderError("unreadable", "a JPEG whose segments end before its first scan, or with bytes "
                                  "between them")
        fill += run.end() - position - 1
        if fill > MAX_JPEG_FILL:
            raise MaskHeaderError("padded", f"a JPEG of more than {MAX_JPEG_FILL} fill bytes before its first scan")
        position = run.end() - 1
        marker = data[position + 1]
        if marker == 0x00:  # a stuffed 0xFF outside entropy data: Pillow skips it, so its size could differ from ours
            raise MaskHeaderError("unreadable", "a JPEG with a stuffed byte (0xFF00) between its segments")
        if marker == 0xDA:
            break
        segments += 1
        if segments > MAX_JPEG_SEGMENTS:
            raise MaskHeaderError("padded", f"a JPEG of more than {MAX_JPEG_SEGMENTS} segments before its first scan")
        if marker in _JPEG_STANDALONE:
            position += 2
            continue
        (length,) = struct.unpack_from(">H", data, position + 2)
        if marker in _JPEG_SOF and position + 9 <= len(data):
            height, width = struct.unpack_from(">HH", data, position + 5)
            size = (width, height)
        if 0xE0 <= marker <= 0xEF or marker == 0xFE:  # APPn, COM
            metadata, metadata_bytes = metadata + 1, metadata_bytes + length
            _metadata(metadata, metadata_bytes, "JPEG APPn and COM segments")
        position += 2 + length
    if size is None:
        raise MaskHeaderError("unreadable", "a JPEG without a frame header (SOFn) before its first scan")
    scans = data.count(b"\xff\xda", position)
    if scans > MAX_JPEG_SCANS:
        raise MaskHeaderError("padded", f"a JPEG of {scans} scans, at most {MAX_JPEG_SCANS} are decoded")
    return Header("JPEG", *size)
