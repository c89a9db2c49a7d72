"""The validator accepts what the organisers accepted and refuses each hostile archive, naming the entries."""

from __future__ import annotations

import io
import os
import stat
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin
from typer.testing import CliRunner

from medico.cli import app
from medico.submission import image_sizes, mask_png, validate_archive, validator

SIZES = {"a": (40, 30), "b": (24, 56), "c": (50, 20)}  # stem: (width, height)


def _mask(stem: str) -> np.ndarray:
    width, height = SIZES[stem]
    mask = np.zeros((height, width), bool)
    mask[height // 4 : height // 2, width // 3 : width // 2] = True
    return mask


def _encode(array: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(array)
    (image.convert(mode) if mode else image).save(buffer, format=fmt)
    return buffer.getvalue()


def _zip(path: Path, members: dict[str, bytes], *, symlinks: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return path


def _good_members() -> dict[str, bytes]:
    return {f"{stem}.png": mask_png(_mask(stem)) for stem in SIZES}


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for stem, (width, height) in SIZES.items():
        Image.new("RGB", (width, height), (120, 60, 50)).save(folder / f"{stem}.jpg")
    return folder


def _problems(archive: Path, images: Path, rule: str) -> list[validator.Problem]:
    report = validate_archive(archive, image_sizes(images))
    assert not report.ok
    return report.by_rule().get(rule, [])


def test_our_own_archive_is_valid(tmp_path: Path, images: Path) -> None:
    masks: dict[str, np.ndarray] = {}
    report = validate_archive(
        _zip(tmp_path / "ok.zip", _good_members()), image_sizes(images), on_mask=masks.__setitem__
    )
    assert report.ok, report.problems
    assert sorted(masks) == ["a", "b", "c"]
    assert all(np.array_equal(masks[stem], _mask(stem)) for stem in SIZES)


def test_a_participant_archive_with_folders_jpeg_and_grey_rgb_masks_is_valid(tmp_path: Path, images: Path) -> None:
    grey_rgb = np.repeat(np.where(_mask("b"), 250, 3).astype(np.uint8)[..., None], 3, axis=2)
    members = {
        "run1/masks/a.jpg": _encode(np.where(_mask("a"), 255, 0).astype(np.uint8), "JPEG"),
        "run1/masks/b.png": _encode(grey_rgb),
        "run1/masks/c.png": _encode(_mask("c"), mode="1"),
        "__MACOSX/run1/masks/._a.jpg": b"\x00\x05\x16\x07",
        "run1/.DS_Store": b"junk",
    }
    masks: dict[str, np.ndarray] = {}
    report = validate_archive(_zip(tmp_path / "p.zip", members), image_sizes(images), on_mask=masks.__setitem__)
    assert report.ok, report.problems
    assert np.array_equal(masks["b"], _mask("b")) and np.array_equal(masks["c"], _mask("c"))
    assert len(report.ignored) == 2


def test_missing_masks_are_listed(tmp_path: Path, images: Path) -> None:
    members = _good_members()
    del members["b.png"], members["c.png"]
    assert [p.entry for p in _problems(_zip(tmp_path / "x.zip", members), images, "missing")] == ["b", "c"]


def test_masks_for_no_image_are_listed(tmp_path: Path, images: Path) -> None:
    members = {**_good_members(), "zzz.png": mask_png(_mask("a"))}
    assert [p.entry for p in _problems(_zip(tmp_path / "x.zip", members), images, "extra")] == ["zzz.png"]


def test_the_same_stem_twice_is_a_duplicate(tmp_path: Path, images: Path) -> None:
    members = {**_good_members(), "deep/a.jpg": _encode(np.where(_mask("a"), 255, 0).astype(np.uint8), "JPEG")}
    entries = [p.entry for p in _problems(_zip(tmp_path / "x.zip", members), images, "duplicate")]
    assert sorted(entries) == ["a.png", "deep/a.jpg"]


def test_a_wrong_size_reports_both_sizes(tmp_path: Path, images: Path) -> None:
    members = {**_good_members(), "c.png": mask_png(np.zeros((21, 50), bool))}
    (problem,) = _problems(_zip(tmp_path / "x.zip", members), images, "wrong_size")
    assert problem.entry == "c.png"
    assert "50x21" in problem.detail and "50x20" in problem.detail and "swapped" not in problem.detail


def test_a_width_height_swap_is_named_as_such(tmp_path: Path, images: Path) -> None:
    members = {**_good_members(), "a.png": mask_png(_mask("a").T)}
    (problem,) = _problems(_zip(tmp_path / "x.zip", members), images, "wrong_size")
    assert "width and height are swapped" in problem.detail
    assert "30x40" in problem.detail and "40x30" in problem.detail


@pytest.mark.parametrize("data", [b"not an image at all", mask_png(_mask("a"))[:60]], ids=["garbage", "truncated"])
def test_unreadable_masks_are_listed(tmp_path: Path, images: Path, data: bytes) -> None:
    members = {**_good_members(), "a.png": data}
    assert [p.entry for p in _problems(_zip(tmp_path / "x.zip", members), images, "unreadable")] == ["a.png"]


def test_a_colour_mask_is_refused(tmp_path: Path, images: Path) -> None:
    red = np.zeros((*_mask("a").shape, 3), np.uint8)
    red[_mask("a")] = (255, 0, 0)
    members = {**_good_members(), "a.png": _encode(red)}
    (problem,) = _problems(_zip(tmp_path / "x.zip", members), images, "not_binary")
    assert problem.entry == "a.png" and "RGB" in problem.detail


def test_absolute_paths_are_refused(tmp_path: Path, images: Path) -> None:
    members = {**_good_members(), "/etc/a.png": mask_png(_mask("a"))}
    assert [p.entry for p in _problems(_zip(tmp_path / "x.zip", members), images, "absolute")] == ["/etc/a.png"]


def test_parent_folder_paths_are_refused(tmp_path: Path, images: Path) -> None:
    members = {**_good_members(), "masks/../../a.png": mask_png(_mask("a"))}
    assert [p.entry for p in _problems(_zip(tmp_path / "x.zip", members), images, "parent")] == ["masks/../../a.png"]


def test_symlinks_are_refused(tmp_path: Path, images: Path) -> None:
    members = _good_members()
    del members["a.png"]
    archive = _zip(tmp_path / "x.zip", members, symlinks={"a.png": "/etc/passwd"})
    assert [p.entry for p in _problems(archive, images, "symlink")] == ["a.png"]


def test_an_archive_over_the_size_limit_is_refused(
    tmp_path: Path, images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = _zip(tmp_path / "x.zip", _good_members())
    monkeypatch.setattr(validator, "MAX_ARCHIVE_BYTES", archive.stat().st_size - 1)
    assert [p.entry for p in _problems(archive, images, "too_big")] == ["x.zip"]


def test_an_archive_over_the_file_count_limit_is_refused(
    tmp_path: Path, images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(validator, "MAX_MEMBERS", 3)
    archive = _zip(tmp_path / "x.zip", {**_good_members(), "notes/readme.txt": b"hello"})
    (problem,) = _problems(archive, images, "too_many")
    assert "4 members" in problem.detail


def test_a_zip_bomb_is_refused_without_decoding_it(tmp_path: Path, images: Path) -> None:
    members = {**_good_members(), "a.png": bytes(16 * 2**20)}
    (problem,) = _problems(_zip(tmp_path / "x.zip", members), images, "zip_bomb")
    assert problem.entry == "a.png" and f"{16 * 2**20:,}" in problem.detail


def test_a_member_too_large_for_its_image_is_refused(tmp_path: Path, images: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, validator.max_member_bytes(40, 30) + 1, dtype=np.uint8)
    members = {**_good_members(), "a.png": noise.tobytes()}
    assert [p.entry for p in _problems(_zip(tmp_path / "x.zip", members), images, "oversized")] == ["a.png"]


def _chunk(kind: bytes, data: bytes = b"") -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _with_chunks(png: bytes, chunks: bytes) -> bytes:
    """``png`` with ``chunks`` inserted after its IHDR (before the image data, where Pillow reads them on open)."""
    return png[:33] + chunks + png[33:]


@pytest.mark.parametrize(
    ("data", "found"),
    [
        (_with_chunks(mask_png(_mask("a")), _chunk(b"zzZz") * 50_000), "more than 32 ancillary PNG chunks"),
        (_with_chunks(mask_png(_mask("a")), _chunk(b"zzZz", bytes(300_000))), "ancillary PNG chunks of more than"),
        (_with_chunks(mask_png(_mask("a")), _chunk(b"IDAT") * 50_000), "a PNG of more than 512 chunks"),
        (_encode(_mask("a").astype(np.uint8) * 255, "JPEG")[:2] + b"\xff\xfe\x00\x02" * 100_000
         + _encode(_mask("a").astype(np.uint8) * 255, "JPEG")[2:], "more than 32 JPEG APPn and COM segments"),
    ],
    ids=["empty-ancillary-chunks", "ancillary-bytes", "empty-image-chunks", "jpeg-comments"],
)
def test_a_mask_padded_with_chunks_is_refused_before_pillow_opens_it(
    tmp_path: Path, images: Path, monkeypatch: pytest.MonkeyPatch, data: bytes, found: str
) -> None:
    """Each padding takes Pillow seconds per mask to open (minutes for an archive) though the zip stays small."""
    archive = _zip(tmp_path / "x.zip", {**_good_members(), "a.png": data})
    expected = image_sizes(images)
    opened: list[bytes] = []
    real_open = validator.Image.open

    def spied(source: io.BytesIO, *args: object, **options: object) -> Image.Image:
        opened.append(source.getvalue())
        return real_open(source, *args, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(validator.Image, "open", spied)
    report = validate_archive(archive, expected)
    assert [(p.rule, p.entry, found in p.detail) for p in report.problems] == [("padded", "a.png", True)]
    assert data not in opened and len(opened) == len(SIZES) - 1  # only the other masks were opened


def test_a_mask_with_a_few_ordinary_ancillary_chunks_is_valid(tmp_path: Path, images: Path) -> None:
    image = Image.fromarray(_mask("a").astype(np.uint8) * 255)
    info = PngImagePlugin.PngInfo()
    for key in ("Software", "Author", "Comment"):
        info.add_text(key, "a tool of ours", zip=key == "Comment")
    buffer = io.BytesIO()
    image.save(buffer, "PNG", pnginfo=info, dpi=(72, 72), icc_profile=bytes(3000))
    members = {**_good_members(), "a.png": buffer.getvalue()}
    assert validate_archive(_zip(tmp_path / "x.zip", members), image_sizes(images)).ok


def test_a_wrong_size_is_refused_from_the_header_without_decoding(tmp_path: Path, images: Path) -> None:
    """The image data after the header is garbage: the size alone refuses the mask."""
    header = mask_png(np.zeros((21, 50), bool))[:33]
    members = {**_good_members(), "c.png": header + _chunk(b"IDAT", b"not deflate data") + _chunk(b"IEND")}
    (problem,) = _problems(_zip(tmp_path / "x.zip", members), images, "wrong_size")
    assert problem.entry == "c.png" and "mask is 50x21" in problem.detail


def test_files_that_are_not_masks_are_refused(tmp_path: Path, images: Path) -> None:
    members = {**_good_members(), "readme.txt": b"our masks"}
    assert [p.entry for p in _problems(_zip(tmp_path / "x.zip", members), images, "not_mask")] == ["readme.txt"]


def test_a_file_that_is_not_a_zip_is_refused(tmp_path: Path, images: Path) -> None:
    archive = tmp_path / "masks.zip"
    archive.write_bytes(b"PK\x03\x04 this is not really a zip")
    assert [p.entry for p in _problems(archive, images, "not_zip")] == ["masks.zip"]


def test_nothing_is_extracted_or_left_behind(tmp_path: Path, images: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    members = {**_good_members(), "../escaped.png": mask_png(_mask("a")), "/tmp/abs.png": b"x"}
    archive = _zip(tmp_path / "x.zip", members)
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    monkeypatch.chdir(images)
    before = sorted(os.listdir(tmp_path)), sorted(os.listdir(images))
    validate_archive(archive, image_sizes(images))
    assert (sorted(os.listdir(tmp_path)), sorted(os.listdir(images))) == before
    assert list(private_tmp.iterdir()) == []


def test_cli_exit_codes_valid_invalid_and_usage(tmp_path: Path, images: Path) -> None:
    runner = CliRunner()
    good = _zip(tmp_path / "good.zip", _good_members())
    result = runner.invoke(app, ["validate", str(good), "--images", str(images)])
    assert result.exit_code == 0 and "valid" in result.output

    bad = _zip(tmp_path / "bad.zip", {**_good_members(), "a.png": mask_png(_mask("a").T), "../x.png": b""})
    result = runner.invoke(app, ["validate", str(bad), "--images", str(images)])
    assert result.exit_code == 1
    assert "width and height are swapped" in result.output and "../x.png" in result.output

    assert runner.invoke(app, ["validate", str(tmp_path / "none.zip"), "--images", str(images)]).exit_code == 2
    assert runner.invoke(app, ["validate", str(good)]).exit_code == 2
