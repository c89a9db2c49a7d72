"""Task 1 archive validation: what the organisers accepted, and each way an archive can be refused.

Accepted: a zip of PNG or JPEG masks named by the images' stems, at any folder depth, each at its image's
exact width x height, stored or deflated, read as binary by the organisers' rule (:mod:`medico.data.masks`: 0/255
and 0/1 both work). Refused, each with the offending entries: not a zip, too big, too many members (or a central
directory too large for them), absolute paths, ``..``, symlinks, files that are not PNG/JPEG, zip bombs, oversized
members, duplicate stems, masks for no image, missing masks, unreadable images (encrypted, compressed by another
method than stored or deflate), padded masks (more chunks, segments, scans or metadata than
:mod:`medico.submission.headers` allows: each would cost the decoder time), wrong sizes (a width/height swap is named as
such) and masks that are not binary (colour, alpha-only, many grey levels).

Members are read through :mod:`zipfile` into memory, one at a time; each one's size and structure are checked from
its bytes before Pillow sees it;
nothing is extracted to disk. Member names are participant text: the report holds them neutralised
(:func:`medico.leaderboard.participant.plain_text`), never raw.
"""

from __future__ import annotations

import io
import re
import stat
import warnings
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from medico.data.io import MAX_PIXELS, image_size, list_images
from medico.data.masks import NotBinaryMaskError, binary_mask
from medico.errors import MedicoError
from medico.leaderboard.participant import plain_text
from medico.submission.headers import MaskHeaderError, mask_header

__all__ = [
    "MASK_SUFFIXES",
    "MAX_ARCHIVE_BYTES",
    "MAX_COMPRESSION_RATIO",
    "MAX_DIRECTORY_BYTES",
    "MAX_MEMBERS",
    "MEMBER_HEADROOM_BYTES",
    "RATIO_FLOOR_BYTES",
    "RULES",
    "InvalidSubmissionError",
    "Problem",
    "ValidationReport",
    "image_sizes",
    "max_member_bytes",
    "validate_archive",
]

MAX_ARCHIVE_BYTES = 256 * 2**20
"""160 binary PNG masks take a few MB; 256 MiB leaves room for JPEG masks and larger test sets."""
MAX_MEMBERS = 10_000
MAX_DIRECTORY_BYTES = MAX_MEMBERS * 512
"""The largest central directory read (room for every member with a name of about 460 characters): :mod:`zipfile` builds
one object per entry before anything can be counted, and a few hundred MB of tiny entries take gigabytes."""
_READ_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
"""Compression methods read: :mod:`zipfile` inflates these in bounded steps, but decompresses a bzip2 or LZMA chunk
whole, and a few kB of bzip2 expand to gigabytes in memory whatever size the header declares."""
MAX_COMPRESSION_RATIO = 100
"""Uncompressed / compressed size above which a member is a zip bomb (PNG and JPEG barely compress)."""
RATIO_FLOOR_BYTES = 2**20
"""The ratio rule applies to members that expand to more than this (tiny files may compress a lot)."""
MEMBER_HEADROOM_BYTES = 2**20
"""Per-member limit = width x height x 4 bytes (an uncompressed RGBA image) + this headroom for headers."""
MASK_SUFFIXES = (".png", ".jpg", ".jpeg")
_IGNORED_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}
_IGNORED_FOLDERS = {"__MACOSX"}

RULES: dict[str, str] = {
    "not_zip": "not a zip archive",
    "too_big": f"archive larger than {MAX_ARCHIVE_BYTES:,} bytes",
    "too_many": f"more than {MAX_MEMBERS:,} members (or a central directory too large for them)",
    "absolute": "absolute path",
    "parent": "'..' in the path",
    "symlink": "symbolic link",
    "not_mask": "not a PNG or JPEG file",
    "zip_bomb": f"expands more than {MAX_COMPRESSION_RATIO}x (zip bomb)",
    "oversized": "uncompressed size too large for its image",
    "duplicate": "same stem more than once",
    "extra": "mask for no image",
    "missing": "no mask for an image",
    "unreadable": "unreadable image",
    "padded": "more chunks, segments, scans or metadata than a mask needs (refused before decoding)",
    "wrong_size": "wrong size",
    "not_binary": "not a binary mask (colour, alpha-only or many grey levels)",
}


class InvalidSubmissionError(MedicoError):
    """A submission archive broke at least one rule; ``report`` lists every offending entry (exit code 1)."""

    exit_code = 1

    def __init__(self, report: ValidationReport) -> None:
        broken = "; ".join(f"{RULES[rule]}: {len(hits)}" for rule, hits in report.by_rule().items())
        super().__init__(f"{report.archive} is not a valid submission ({broken})")
        self.report = report


@dataclass(frozen=True)
class Problem:
    """One broken rule: which entry (member name, or image stem for a missing mask) and what was found; both are
    neutralised (:func:`plain_text`): member names are the participant's text."""

    rule: str
    entry: str
    detail: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "entry", plain_text(self.entry))
        object.__setattr__(self, "detail", plain_text(self.detail))


@dataclass
class ValidationReport:
    """The outcome of :func:`validate_archive`."""

    archive: Path
    expected: int
    masks: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the archive is a valid submission."""
        return not self.problems

    def by_rule(self) -> dict[str, list[Problem]]:
        """Problems grouped by rule, in the order of :data:`RULES`."""
        return {rule: hits for rule in RULES if (hits := [p for p in self.problems if p.rule == rule])}

    def add(self, rule: str, entry: str, detail: str) -> None:
        """Record a broken rule."""
        self.problems.append(Problem(rule, entry, detail))


def image_sizes(folder: Path) -> dict[str, tuple[int, int]]:
    """``{stem: (width, height)}`` of the images in ``folder``, read from their headers."""
    sizes: dict[str, tuple[int, int]] = {}
    for path in list_images(folder):
        if path.stem in sizes:
            raise MedicoError(f"{folder}: two images share the stem {path.stem!r}; stems must be unique")
        height, width = image_size(path)
        sizes[path.stem] = (width, height)
    if not sizes:
        raise MedicoError(f"{folder}: expected image files, found none")
    return sizes


def max_member_bytes(width: int, height: int) -> int:
    """The largest uncompressed size a mask of ``width`` x ``height`` may declare."""
    return width * height * 4 + MEMBER_HEADROOM_BYTES


def _unsafe(info: zipfile.ZipInfo) -> tuple[str, str] | None:
    name = info.filename
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "absolute", "would be written outside the extraction folder"
    if ".." in re.split(r"[/\\]", name):
        return "parent", "climbs out of the extraction folder"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symlink", "a link, not a file"
    return None


def _ignored(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return bool(parts) and (parts[0] in _IGNORED_FOLDERS or parts[-1] in _IGNORED_NAMES or parts[-1].startswith("._"))


def _header_problem(info: zipfile.ZipInfo, width: int, height: int) -> tuple[str, str] | None:
    """The rule a member breaks by what its header declares (method, sizes, encryption), before a byte is read."""
    if info.compress_type not in _READ_METHODS:
        method = zipfile.compressor_names.get(info.compress_type, f"method {info.compress_type}")
        return "unreadable", f"compressed with {method}: only {' or '.join(_READ_METHODS.values())} members are read"
    if info.file_size > RATIO_FLOOR_BYTES and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
        ratio = info.file_size / max(info.compress_size, 1)
        return "zip_bomb", f"{info.compress_size:,} bytes expand to {info.file_size:,} ({ratio:,.0f}x)"
    limit = max_member_bytes(width, height)
    if info.file_size > limit:
        return "oversized", f"{info.file_size:,} bytes uncompressed, at most {limit:,} for a {width}x{height} mask"
    if info.flag_bits & 0x1:
        return "unreadable", "encrypted"
    return None


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """The member's bytes, never more than ``limit`` + 1 (a header that lies about the size is caught)."""
    with archive.open(info) as handle:
        return handle.read(limit + 1)


def _decode(data: bytes, label: str, width: int, height: int) -> tuple[np.ndarray | None, tuple[str, str] | None]:
    """The mask as booleans, or the rule it breaks; the size and structure are checked before Pillow opens it."""
    try:
        header = mask_header(data)
    except MaskHeaderError as error:
        return None, (error.rule, error.detail)
    if (header.width, header.height) != (width, height):
        found = f"mask is {header.width}x{header.height}, image is {width}x{height} (width x height)"
        if (header.width, header.height) == (height, width):
            return None, ("wrong_size", f"width and height are swapped: {found}")
        return None, ("wrong_size", found)
    if width * height > MAX_PIXELS:
        return None, ("oversized", f"{width}x{height} exceeds {MAX_PIXELS:,} pixels")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=(header.format,))
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        return None, ("unreadable", f"{type(error).__name__}: {error}")
    try:
        return binary_mask(image, label), None
    except NotBinaryMaskError as error:
        return None, ("not_binary", error.found)


def validate_archive(
    archive: Path,
    expected: Mapping[str, tuple[int, int]],
    *,
    on_mask: Callable[[str, np.ndarray], None] | None = None,
) -> ValidationReport:
    """Check a task 1 archive against the expected masks, reading members in memory one at a time.

    Args:
        archive: the zip file.
        expected: ``{stem: (width, height)}`` of the images (or ground-truth masks), e.g. from :func:`image_sizes`.
        on_mask: called with ``(stem, boolean (H, W) mask)`` for every mask that passes its own checks.

    Returns:
        the report; ``report.ok`` is False when any rule is broken.

    Raises:
        MedicoError: ``archive`` does not exist (a usage error, not an invalid submission).
    """
    archive = Path(archive)
    if not archive.is_file():
        found = "a folder" if archive.is_dir() else "nothing"
        raise MedicoError(f"ARCHIVE {archive}: expected a zip file, found {found}")
    report = ValidationReport(archive, len(expected))
    size = archive.stat().st_size
    if size > MAX_ARCHIVE_BYTES:
        report.add("too_big", archive.name, f"{size:,} bytes, at most {MAX_ARCHIVE_BYTES:,}")
        return report
    directory = _directory_bytes(archive)
    if directory is not None and directory > MAX_DIRECTORY_BYTES:
        found = f"a central directory of {directory:,} bytes, at most {MAX_DIRECTORY_BYTES:,}"
        report.add("too_many", archive.name, found)
        return report
    try:
        zipped = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        report.add("not_zip", archive.name, f"{type(error).__name__}: {error}")
        return report
    with zipped:
        _check_members(zipped, expected, report, on_mask)
    return report


def _directory_bytes(archive: Path) -> int | None:
    """The size of the archive's central directory as its end record declares it (None without one), read the way
    :class:`zipfile.ZipFile` reads it next (its private ``_EndRecData``; zip64 included), so that the size is
    checked before one object per entry is built."""
    try:
        with archive.open("rb") as handle:
            end = zipfile._EndRecData(handle)  # type: ignore[attr-defined]
    except OSError:
        return None  # ZipFile then names the problem
    return None if end is None else int(end[zipfile._ECD_SIZE])  # type: ignore[attr-defined]


def _check_members(
    zipped: zipfile.ZipFile,
    expected: Mapping[str, tuple[int, int]],
    report: ValidationReport,
    on_mask: Callable[[str, np.ndarray], None] | None,
) -> None:
    infos = zipped.infolist()
    if len(infos) > MAX_MEMBERS:
        report.add("too_many", report.archive.name, f"{len(infos):,} members, at most {MAX_MEMBERS:,}")
        return
    by_stem: dict[str, list[zipfile.ZipInfo]] = {}
    for info in infos:
        unsafe = _unsafe(info)
        if unsafe:
            report.add(unsafe[0], info.filename, unsafe[1])
        elif info.is_dir():
            continue
        elif _ignored(info.filename):
            report.ignored.append(plain_text(info.filename))
        elif PurePosixPath(info.filename).suffix.lower() not in MASK_SUFFIXES:
            report.add("not_mask", info.filename, f"expected {', '.join(MASK_SUFFIXES)} masks only")
        else:
            by_stem.setdefault(PurePosixPath(info.filename).stem, []).append(info)
    for stem, members in by_stem.items():
        if len(members) > 1:
            for info in members:
                report.add("duplicate", info.filename, f"stem {stem!r} appears {len(members)} times")
        elif stem not in expected:
            report.add("extra", members[0].filename, f"no image named {stem!r}")
        else:
            _check_mask(zipped, members[0], stem, expected[stem], report, on_mask)
    for stem in expected:
        if stem not in by_stem:
            report.add("missing", stem, "no PNG or JPEG mask with this stem in the archive")


def _check_mask(
    zipped: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    stem: str,
    size: tuple[int, int],
    report: ValidationReport,
    on_mask: Callable[[str, np.ndarray], None] | None,
) -> None:
    width, height = size
    problem = _header_problem(info, width, height)
    if problem is None:
        limit = max_member_bytes(width, height)
        try:
            data = _read_member(zipped, info, limit)
        except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, OSError, EOFError) as error:
            problem = ("unreadable", f"{type(error).__name__}: {error}")
        else:
            if len(data) > limit:
                found = f"more than {limit:,} bytes uncompressed (the zip header says {info.file_size:,})"
                problem = ("oversized", found)
            else:
                mask, problem = _decode(data, info.filename, width, height)
    if problem is not None:
        report.add(problem[0], info.filename, problem[1])
        return
    report.masks[stem] = info.filename
    if on_mask is not None:
        on_mask(stem, mask)
