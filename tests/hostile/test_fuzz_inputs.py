"""Hostile archives and datasets, built at random from hostile parts, only ever get a verdict with a message.

``validate``, ``score`` and ``data check`` must answer valid/invalid (exit 0, 1 or 2) without a traceback,
create no file outside their output folder, and leave nothing half-written: no temporary file, no partial
result after a failure, the leaderboard unchanged by an invalid archive. A scored archive scores what the
organisers' reading of its masks (written out independently below) scores.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from medico.cli import app

pytestmark = pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")  # duplicates are one hostile part
runner = CliRunner()
SIZES = {"a": (12, 8), "b": (8, 14), "c": (10, 10)}
"""The images a submission answers (stem: width x height), small so that every example decodes fast."""
ESCAPE = "h3fuzz-escape"
"""Part of every member name that tries to leave its folder; no file of that name may appear anywhere."""
FUZZ = settings(
    max_examples=60, deadline=None, database=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


@dataclass(frozen=True)
class Member:
    """One entry of a hostile archive or dataset: bytes at a name, or a symbolic link to ``link``."""

    name: str
    data: bytes = b""
    link: str | None = None
    declared_size: int | None = None
    """A size the zip's central directory claims instead of the real one (a lying header)."""
    raw_name: bool = False
    """Write the name's bytes not as UTF-8 but with an invalid byte in front (a non-UTF-8 name)."""


# ---- hostile parts -------------------------------------------------------------------------------------------


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` pixels but holds almost no data (a decompression bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


CLEAN = st.sampled_from([True, True, True, False])
"""Three parts in four are clean, so that valid archives and usable datasets come up as well as broken ones."""


@st.composite
def mask_images(draw: st.DrawFn, width: int, height: int, hostile: bool) -> bytes:
    """An encoded mask of any mode, 0/1, 0/255 or noisy; hostile ones may be colour, alpha-only, many-level or
    of another size."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if hostile:
        width, height = draw(st.sampled_from([(width, height), (height, width), (width + 1, height), (1, 1)]))
    shape = (height, width)
    polyp = rng.random(shape) < draw(st.sampled_from([0.0, 0.3, 1.0]))
    noise = 40 if hostile else 8
    schemes = ["0/255", "0/1", "noisy"] + (["levels", "constant"] if hostile else [])
    grey = {
        "0/255": polyp * 255,
        "0/1": polyp * 1,
        "noisy": np.clip(polyp * 255 + rng.integers(-noise, noise, shape), 0, 255),
        "levels": rng.integers(0, 256, shape),
        "constant": np.full(shape, rng.integers(0, 256)),
    }[draw(st.sampled_from(schemes))].astype(np.uint8)
    mode = draw(st.sampled_from(["1", "L", "I;16", "RGB", "RGBA", "LA", "P"]))
    if mode == "1":
        image = Image.fromarray(grey > 127)
    elif mode == "I;16":
        image = Image.fromarray(grey.astype(np.uint16) * draw(st.sampled_from([1, 257])))
    elif mode in ("RGB", "RGBA", "P"):
        rgb = np.stack([grey] * 3, axis=-1)
        if hostile and draw(st.booleans()):
            rgb[..., draw(st.integers(0, 2))] = rng.integers(0, 256, shape)  # colour
        image = Image.fromarray(rgb).convert("P") if mode == "P" else Image.fromarray(rgb)
        if mode == "RGBA":
            alphas = {"opaque": np.full(shape, 255), "grey": grey}
            if hostile:
                alphas |= {"only": polyp * 255, "random": rng.integers(0, 256, shape)}
                if draw(st.booleans()):
                    rgb[:] = 255  # one flat colour: the shape is in the alpha channel only
            alpha = alphas[draw(st.sampled_from(sorted(alphas)))]
            image = Image.fromarray(np.dstack([rgb, alpha.astype(np.uint8)]))
    elif mode == "LA":
        image = Image.fromarray(np.dstack([grey, grey if not hostile else (polyp * 255).astype(np.uint8)]))
    else:
        image = Image.fromarray(grey)
    fmt = draw(st.sampled_from(["PNG", "JPEG"])) if mode in ("L", "RGB") else "PNG"
    return _encode(image, fmt)


@st.composite
def photos(draw: st.DrawFn, width: int, height: int, hostile: bool) -> bytes:
    """An encoded frame: 8-bit colour (JPEG or PNG) or 16-bit grey; hostile ones may be of another size."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if hostile:
        width, height = draw(st.sampled_from([(width, height), (height, width)]))
    if draw(st.booleans()):
        return _encode(Image.fromarray(rng.integers(0, 65536, (height, width)).astype(np.uint16)), "PNG")
    rgb = rng.integers(0, 256, (height, width, 3)).astype(np.uint8)
    return _encode(Image.fromarray(rgb), draw(st.sampled_from(["PNG", "JPEG"])))


@st.composite
def damaged(draw: st.DrawFn, good: st.SearchStrategy[bytes]) -> bytes:
    """``good`` bytes, or the same truncated, with flipped bytes, or replaced by junk, nothing or a bomb header."""
    how = draw(st.sampled_from(["intact", "truncated", "flipped", "junk", "empty", "bomb"]))
    if how == "junk":
        return draw(st.binary(max_size=64))
    if how == "empty":
        return b""
    if how == "bomb":
        return _png_claiming(*draw(st.sampled_from([(100_000, 100_000), (9000, 9000), (2**31 - 1, 1)])))
    data = draw(good)
    if how == "truncated":
        return data[: draw(st.integers(0, max(len(data) - 1, 0)))]
    if how == "flipped":
        cut = draw(st.integers(0, len(data) - 1))
        return data[:cut] + bytes([data[cut] ^ 0xFF]) + data[cut + 1 :]
    return data


def names(stem: str, folders: list[str], suffixes: list[str]) -> st.SearchStrategy[str]:
    """A hostile member name for ``stem``: nested, case-changed, other extensions, or climbing out of its folder."""
    folder = st.sampled_from(folders)
    hostile = st.sampled_from(["", f"../{ESCAPE}/", f"/tmp/{ESCAPE}/", "C:\\", "__MACOSX/", "deep/er/"])
    case = st.sampled_from([stem, stem.upper()])
    return st.builds(lambda h, f, s, x: f"{h}{f}{s}{x}", hostile, folder, case, st.sampled_from(suffixes))


@st.composite
def members(draw: st.DrawFn, name: st.SearchStrategy[str], data: st.SearchStrategy[bytes]) -> Member:
    """A hostile member: a file (maybe with a lying size or a non-UTF-8 name) or a symbolic link."""
    member_name = draw(name)
    kind = draw(st.sampled_from(["file", "link", "lying size", "raw name"]))
    if kind == "link":
        return Member(member_name, link=draw(st.sampled_from(["/etc/passwd", f"../../{ESCAPE}", member_name])))
    if kind == "lying size":
        return Member(member_name, draw(data), declared_size=draw(st.sampled_from([2**31 - 1, 0, 2**20 * 900])))
    return Member(member_name, draw(data), raw_name=kind == "raw name")


@st.composite
def part(draw: st.DrawFn, clean: st.SearchStrategy[list[Member]], hostile: st.SearchStrategy[Member]) -> list[Member]:
    """Mostly the clean members; otherwise none, one or two hostile ones (missing, broken or duplicated)."""
    return draw(clean) if draw(CLEAN) else draw(st.lists(hostile, max_size=2))


def archive_entries() -> st.SearchStrategy[list[Member]]:
    """A task 1 submission: per image its mask, or hostile ones, plus sometimes extra members."""
    parts = []
    for stem, (width, height) in SIZES.items():
        name = st.builds(lambda f, x, stem=stem: f"{f}{stem}{x}", st.sampled_from(["", "masks/", "run1/masks/"]),
                         st.sampled_from([".png", ".jpg", ".PNG", ".jpeg"]))
        clean = st.builds(lambda n, d: [Member(n, d)], name, mask_images(width, height, hostile=False))
        hostile_name = names(stem, ["", "masks/"], [".png", ".jpg", ".jpeg", ".bmp", ""])
        parts.append(part(clean, members(hostile_name, damaged(mask_images(width, height, hostile=True)))))
    parts.append(part(st.just([]), members(names("zzz", ["", "masks/"], [".png", ".txt", ""]), st.binary(max_size=32))))
    return st.tuples(*parts).map(lambda groups: [m for group in groups for m in group])


def dataset_entries() -> st.SearchStrategy[list[Member]]:
    """A Kvasir-style dataset: per name an image and its mask, or hostile ones, plus lists, boxes and junk."""
    parts = []
    for stem, (width, height) in SIZES.items():
        suffix = st.sampled_from([".jpg", ".png"])
        clean = st.builds(
            lambda i, m, x, stem=stem: [Member(f"images/{stem}.jpg", i), Member(f"masks/{stem}{x}", m)],
            photos(width, height, hostile=False), mask_images(width, height, hostile=False), suffix,
        )
        image = members(names(stem, ["images/", "images/sub/"], [".jpg", ".png", ".JPG", ".txt"]),
                        damaged(photos(width, height, hostile=True)))
        mask = members(names(stem, ["masks/", "Masks/"], [".jpg", ".png", ".tif"]),
                       damaged(mask_images(width, height, hostile=True)))
        parts.append(part(clean, st.one_of(image, mask)))
    text = st.one_of(st.just(b"a\nb\nc\n"), st.just(b"a\na\n"), st.text(max_size=40).map(str.encode), st.binary())
    where = st.sampled_from(["splits/medico2020/train.txt", "splits/medico2020/val.txt", "kavsir_bboxes.json"])
    listing = st.builds(Member, where, text)
    parts.append(part(st.just([]), listing))
    return st.tuples(*parts).map(lambda groups: [m for group in groups for m in group])


def _raw_name(index: int) -> tuple[bytes, bytes]:
    """The placeholder written in front of a raw name and the non-UTF-8 bytes patched over it (same length)."""
    return f"~{index:03d}~".encode(), b"\xff\x80" + f"{index:03d}".encode()


def stored_name(index: int, entry: Member) -> str:
    """The member's name as a zip reader sees it (raw bytes decode as cp437, since no UTF-8 flag is set)."""
    return _raw_name(index)[1].decode("cp437") + entry.name if entry.raw_name else entry.name


def _zip_bytes(entries: list[Member]) -> bytes:
    """A zip of ``entries``; links as Unix symlink members; lying sizes and raw names patched into the bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index, entry in enumerate(entries):
            name = _raw_name(index)[0].decode() + entry.name if entry.raw_name else entry.name
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if entry.link is not None:
                info.create_system = 3
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, entry.link.encode() if entry.link is not None else entry.data)
    data = buffer.getvalue()
    for index, entry in enumerate(entries):
        if entry.raw_name:  # same length, so every offset stays right
            data = data.replace(*_raw_name(index))
    return _patch_sizes(data, [entry.declared_size for entry in entries])


def _patch_sizes(data: bytes, sizes: list[int | None]) -> bytes:
    """The zip ``data`` with the central directory's uncompressed sizes replaced where ``sizes`` gives one."""
    patched = bytearray(data)
    end = data.rfind(b"PK\x05\x06")
    (offset,) = struct.unpack_from("<I", data, end + 16)
    for size in sizes:
        name, extra, comment = struct.unpack_from("<HHH", data, offset + 28)
        if size is not None:
            struct.pack_into("<I", patched, offset + 24, size)
        offset += 46 + name + extra + comment
    return bytes(patched)


# ---- the property --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    """A fresh folder as the current folder, with runs, cache, leaderboard and temporary files inside it."""
    with tempfile.TemporaryDirectory() as name, pytest.MonkeyPatch.context() as patch:
        root = Path(name).resolve()
        (root / "tmp").mkdir()
        patch.chdir(root)
        patch.setattr(tempfile, "tempdir", str(root / "tmp"))
        patch.setenv("MEDICO_CACHE", str(root / ".cache"))
        patch.setenv("MEDICO_RUNS", str(root / "runs"))
        patch.setenv("MEDICO_DB", str(root / "leaderboard" / "medico.sqlite"))
        yield root


def snapshot(root: Path) -> dict[str, str]:
    """Every entry below ``root`` (links not followed): its path and a digest of its content or link target."""
    found = {}
    for folder, subfolders, files in os.walk(root):
        for name in subfolders + files:
            path = Path(folder) / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                found[key] = "link:" + os.readlink(path)
            elif path.is_file():
                found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                found[key] = "folder"
    return found


def answers_with_a_verdict(root: Path, arguments: list[str], may_write: tuple[str, ...] = ()) -> int:
    """Run the command and check it answered with a message, wrote only ``may_write`` (and only on success)."""
    before = snapshot(root)
    result = runner.invoke(app, arguments)
    assert result.exit_code in (0, 1, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output and result.output.strip()
    after = snapshot(root)
    changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
    allowed = {key for key in changed if key.startswith(may_write)} if result.exit_code == 0 else set()
    assert changed <= allowed, (arguments, result.exit_code, sorted(changed - allowed), result.output)
    assert not [key for key in after if Path(key).name.startswith(".") and key not in before]  # no temporary file
    assert not [key for key in after if ESCAPE in key] and not Path(f"/tmp/{ESCAPE}").exists()
    assert not (root.parent / ESCAPE).exists()
    return result.exit_code


def organisers_reading(data: bytes) -> np.ndarray:
    """The organisers' script, written independently: grey (16-bit scaled to 8 bits), /255 only when the maximum
    exceeds 127, then above 0.5 is polyp."""
    image = Image.open(io.BytesIO(data))
    if image.mode.startswith("I"):
        values = np.asarray(image).astype(float)
        values = np.round(values / 257) if values.max() > 255 else values
    else:
        values = np.asarray(image.convert("L")).astype(float)
    return (values / 255 if values.max() > 127 else values) > 0.5


def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    both = prediction.sum() + truth.sum()
    return 1.0 if both == 0 else 2 * (prediction & truth).sum() / both


def submitted(entries: list[Member], stem: str) -> np.ndarray:
    """The organisers' reading of the one mask a valid archive holds for ``stem``."""
    (data,) = [
        m.data for index, m in enumerate(entries)
        for name in [PurePosixPath(stored_name(index, m))]
        if m.link is None and name.parts[0] != "__MACOSX" and name.stem == stem
        and name.suffix.lower() in (".png", ".jpg", ".jpeg")
    ]
    return organisers_reading(data)


def _write_folder(folder: Path, entries: list[Member]) -> None:
    """``entries`` as files and links below ``folder`` (names that would leave it are left out: that is zip-only)."""
    for entry in entries:
        if ESCAPE in entry.name or "\\" in entry.name or entry.name.startswith("/"):
            continue
        path = folder / entry.name
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            continue
        if entry.link is not None:
            path.symlink_to(entry.link if entry.link != entry.name else path.name)  # a link to itself: a loop
        else:
            path.write_bytes(entry.data)


def _zero_one(stem: str) -> bytes:
    """A 0/1 PNG mask for ``stem``, its left half polyp: valid for the organisers, empty for a cut at 128."""
    width, height = SIZES[stem]
    return _encode(Image.fromarray((np.arange(width) < width // 2).astype(np.uint8)[None].repeat(height, 0)), "PNG")


@FUZZ
@example(entries=[Member(f"masks/{stem}.png", _zero_one(stem)) for stem in SIZES], whole="zip")
@given(entries=archive_entries(), whole=st.sampled_from(["zip", "zip", "zip", "truncated", "not a zip"]))
def test_validate_and_score_answer_any_archive_with_a_verdict(entries: list[Member], whole: str) -> None:
    with workspace() as root:
        images, truth = root / "images", root / "truth"
        images.mkdir()
        truth.mkdir()
        for stem, (width, height) in SIZES.items():
            Image.new("RGB", (width, height), (90, 40, 30)).save(images / f"{stem}.jpg")
            polyp = np.zeros((height, width), np.uint8)
            polyp[2:6, 3:7] = 255
            Image.fromarray(polyp).save(truth / f"{stem}.png")
        data = _zip_bytes(entries)
        data = {"zip": data, "truncated": data[: len(data) // 2], "not a zip": data[::-1]}[whole]
        archive = root / "submissions" / "TEAM_task1_run1.zip"
        archive.parent.mkdir()
        archive.write_bytes(data)

        validated = answers_with_a_verdict(root, ["validate", str(archive), "--images", str(images)])
        results = ("submissions/TEAM_task1_run1_scores.csv", "submissions/TEAM_task1_run1_summary.json")
        scored = answers_with_a_verdict(
            root, ["score", str(archive), "--truth", str(truth), "--team", "TEAM"], (*results, "leaderboard")
        )
        assert scored == validated  # the truth is sound, so scoring refuses exactly what validation refuses
        assert all((root / result).is_file() for result in results) == (scored == 0)
        if scored == 0:
            summary = json.loads((root / results[1]).read_text())["scores"]
            truths = {stem: organisers_reading((truth / f"{stem}.png").read_bytes()) for stem in SIZES}
            assert summary["dice"] == pytest.approx(np.mean([dice(submitted(entries, s), truths[s]) for s in SIZES]))


@FUZZ
@example(  # a pair whose mask is a link to itself: a loop
    entries=[
        Member("images/a.jpg", _encode(Image.new("RGB", SIZES["a"]), "JPEG")), Member("masks/a.png", link="masks/a.png")
    ],
    container="folder",
)
@given(entries=dataset_entries(), container=st.sampled_from(["folder", "zip", "nested zip"]))
def test_data_check_answers_any_dataset_with_a_verdict(entries: list[Member], container: str) -> None:
    with workspace() as root:
        if container == "folder":
            target = root / "kvasir"
            target.mkdir()
            _write_folder(target, entries)
        else:
            prefix = "Kvasir-SEG/" if container == "nested zip" else ""
            target = root / "kvasir.zip"
            target.write_bytes(_zip_bytes([Member(prefix + m.name, m.data, m.link, m.declared_size, m.raw_name)
                                           for m in entries]))
        answers_with_a_verdict(root, ["data", "check", str(target)])
