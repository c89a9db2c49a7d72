"""Reading Kvasir-SEG-style folders and zips, and `check_dataset` finding each kind of defect by file."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medico.data import DataError, open_dataset
from medico.data.checks import check_dataset
from medico.data.io import list_images
from medico.data.masks import read_mask
from medico.data.synthetic import write_synthetic_kvasir
from medico.errors import MedicoError


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_synthetic_kvasir(tmp_path / "kvasir", count=6, val_count=2)


def zip_folder(folder: Path, archive: Path, prefix: str = "Kvasir-SEG/") -> Path:
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                handle.write(path, prefix + path.relative_to(folder).as_posix())
    return archive


def test_a_folder_reads_as_named_rgb_images_and_binary_masks_at_original_size(folder: Path) -> None:
    dataset = open_dataset(folder)
    assert dataset.names == tuple(f"synthetic-{i:04d}" for i in range(6))
    assert not dataset.is_synthetic and dataset.recommended == {}
    assert "6 pairs" in dataset.description
    for name in dataset.names:
        image, mask = dataset.read_image(name), dataset.read_mask(name)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert mask.dtype == bool and mask.shape == image.shape[:2] == dataset.image_size(name)
    assert {dataset.image_size(n) for n in dataset.names} >= {(160, 192), (176, 224), (160, 160)}


def test_a_zip_reads_the_same_pairs_and_fingerprint_as_its_folder(folder: Path, tmp_path: Path) -> None:
    from_folder = open_dataset(folder)
    from_zip = open_dataset(zip_folder(folder, tmp_path / "kvasir-seg.zip"))
    assert from_zip.names == from_folder.names
    assert from_zip.fingerprint() == from_folder.fingerprint()
    name = from_zip.names[3]
    assert np.array_equal(from_zip.read_image(name), from_folder.read_image(name))
    assert np.array_equal(from_zip.read_mask(name), from_folder.read_mask(name))
    assert len(from_zip.read_text("splits/medico2020/val.txt").split()) == 2


def test_the_fingerprint_changes_when_a_mask_changes(folder: Path) -> None:
    before = open_dataset(folder).fingerprint()
    mask = folder / "masks" / "synthetic-0001.jpg"
    Image.fromarray(np.zeros((176, 224), np.uint8)).save(mask)
    assert open_dataset(folder).fingerprint() != before


def test_a_zip_member_that_would_leave_the_archive_is_refused_and_reported(folder: Path, tmp_path: Path) -> None:
    archive = zip_folder(folder, tmp_path / "evil.zip", prefix="")
    with zipfile.ZipFile(archive, "a") as handle:
        handle.writestr("../images/escape.jpg", (folder / "images" / "synthetic-0000.jpg").read_bytes())
        handle.writestr("../masks/escape.jpg", (folder / "masks" / "synthetic-0000.jpg").read_bytes())
    dataset = open_dataset(archive)
    assert "escape" not in dataset.names
    assert any("../images/escape.jpg" in p.file and "unsafe" in p.message for p in dataset.problems)
    assert not (tmp_path / "images").exists()


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_png_and_tiff_masks_matched_by_stem_are_accepted(tmp_path: Path, suffix: str) -> None:
    folder = write_synthetic_kvasir(tmp_path / "cvc", count=3, mask_suffix=suffix)
    dataset = open_dataset(folder)
    assert len(dataset.names) == 3
    assert dataset.read_mask(dataset.names[0]).any()


def test_an_unusable_path_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or folder"):
        open_dataset(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty.*images/ and masks/"):
        open_dataset(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="not a zip"):
        open_dataset(tmp_path / "notes.txt")


def test_a_datasets_images_folder_given_as_the_dataset_points_at_the_folder_above(folder: Path) -> None:
    with pytest.raises(DataError, match=f"did you mean {re.escape(str(folder))}\\?"):
        open_dataset(folder / "images")


def test_a_parent_folder_holding_one_dataset_folder_is_accepted(folder: Path) -> None:
    assert open_dataset(folder.parent).names == open_dataset(folder).names


def test_a_mask_whose_size_differs_from_its_image_is_an_error_on_reading(folder: Path) -> None:
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(folder / "masks" / "synthetic-0002.jpg")
    with pytest.raises(DataError, match=r"synthetic-0002\.jpg: mask is 12x10"):
        open_dataset(folder).read_mask("synthetic-0002")


def test_check_lists_every_kind_of_defect_with_its_file(folder: Path) -> None:
    images, masks = folder / "images", folder / "masks"
    (images / "synthetic-0000.jpg").rename(images / "lonely.jpg")  # image without mask, mask without image
    truncated = (images / "synthetic-0001.jpg").read_bytes()
    (images / "synthetic-0001.jpg").write_bytes(truncated[: len(truncated) // 2])
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(masks / "synthetic-0002.jpg")
    Image.fromarray(np.tile(np.arange(224, dtype=np.uint8), (176, 1))).save(masks / "synthetic-0004.png")
    (masks / "synthetic-0004.jpg").unlink()
    Image.new("1", (8200, 8200)).save(images / "synthetic-0005.png")  # 67 Mpx: a decompression bomb
    (images / "synthetic-0005.jpg").unlink()
    (masks / "synthetic-0003.jpg").write_bytes(b"not an image")

    report = check_dataset(folder, threads=1)
    found = {(Path(p.file).name, p.message.split(" (")[0].split(":")[0]) for p in report.problems}
    assert ("lonely.jpg", "image without mask") in found
    assert ("synthetic-0000.jpg", "mask without image") in found
    assert any(f == "synthetic-0001.jpg" and "cannot read" in m for f, m in found)
    assert any(f == "synthetic-0003.jpg" and "cannot read" in m for f, m in found)
    assert ("synthetic-0002.jpg", "mask is 30x20, its image is 160x160") in {
        (Path(p.file).name, p.message) for p in report.problems
    }
    assert any(Path(p.file).name == "synthetic-0004.png" and "not binary" in p.message for p in report.problems)
    assert any(
        Path(p.file).name == "synthetic-0005.png" and "decompression bomb" in p.message for p in report.problems
    )
    assert not report.usable


def test_check_of_a_clean_dataset_reports_statistics_and_no_problem(folder: Path) -> None:
    report = check_dataset(folder, threads=1)
    assert report.usable and not report.problems
    assert len(report.pairs) == 6
    assert report.splits["medico2020"] == "4 train / 2 val"
    assert report.empty_masks == []  # frame 7 is the first without a polyp
    assert all(0 < f < 1 for f in report.foregrounds)


def test_the_real_kvasir_seg_opens_with_the_medico2020_split(kvasir_path: Path) -> None:
    dataset = open_dataset(kvasir_path)
    assert len(dataset.names) == 1000
    name = dataset.names[0]
    mask = dataset.read_mask(name)
    assert mask.shape == dataset.read_image(name).shape[:2] == dataset.image_size(name)
    assert 0 < mask.mean() < 1


@pytest.mark.slow
def test_the_real_kvasir_seg_checks_clean(kvasir_path: Path) -> None:
    report = check_dataset(kvasir_path)
    assert report.usable, report.problems[:5]
    assert len(set(report.sizes)) == 333 and max(report.sizes) == (1072, 1920)
    assert report.splits["medico2020"] == "880 train / 120 val"


@pytest.mark.parametrize("mode", ["1", "L", "RGB", "P"])
def test_a_mask_reads_the_same_in_every_image_mode(tmp_path: Path, mode: str) -> None:
    """1-bit, grey, colour and palette PNG masks of the same shape all read as that shape."""
    truth = np.zeros((6, 8), dtype=bool)
    truth[1:4, 2:7] = True
    path = tmp_path / f"mask-{mode}.png"
    Image.fromarray(truth.astype(np.uint8) * 255).convert(mode).save(path)
    np.testing.assert_array_equal(read_mask(path), truth)


def test_a_folder_without_images_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no pictures here")
    with pytest.raises(MedicoError, match=f"{tmp_path}: no images found") as raised:
        list_images(tmp_path)
    assert "did you mean" not in str(raised.value), "no images/ subfolder to point at"


def test_a_folder_whose_images_subfolder_holds_the_images_points_at_it(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    Image.new("RGB", (4, 3)).save(tmp_path / "images" / "frame.jpg")
    inner = re.escape(str(tmp_path / "images"))
    with pytest.raises(MedicoError, match=f"no images found .*; did you mean {inner} \\(1 image\\)\\?"):
        list_images(tmp_path)


def test_the_real_medico2020_test_set_given_one_level_too_high_points_at_its_images(
    medico2020_test_images: Path,
) -> None:
    with pytest.raises(MedicoError, match=f"did you mean {re.escape(str(medico2020_test_images))} \\(160 images\\)"):
        list_images(medico2020_test_images.parent)
