"""Masks are read as the Medico organisers read them, in data loading, ``data check``, ``validate`` and ``score``.

Their rule: greyscale, divided by 255 only when the maximum exceeds 127, values above 0.5 are polyp. A 0/1 PNG
is therefore a real mask, and a mask that rule would misread (colour, alpha-only, many grey levels) is refused
by every command, naming the file.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from typer.testing import CliRunner

from medico.cli import app
from medico.data import open_dataset
from medico.data.checks import check_dataset
from medico.data.synthetic import write_synthetic_kvasir
from medico.submission import image_sizes, validate_archive

runner = CliRunner()
TINY = ["--option", "init_features=4", "--input-size", "32", "--epochs", "1", "--no-leaderboard"]
BAD_NAME = "synthetic-0001"


def says(result: object, text: str) -> bool:
    """Whether the command's output holds ``text``, whitespace ignored (rich wraps and folds long paths)."""
    return "".join(text.split()) in "".join(result.output.split())


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def zip_masks(path: Path, masks: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in masks.items():
            archive.writestr(f"masks/{name}", data)
    return path


def dataset_with_png_masks(folder: Path, encode: Callable[[np.ndarray], bytes]) -> dict[str, np.ndarray]:
    """A small Kvasir-style folder whose masks are re-encoded by ``encode``; returns the true masks by name."""
    write_synthetic_kvasir(folder, count=6, val_count=2, mask_suffix=".png")
    truth = {}
    for path in sorted((folder / "masks").iterdir()):
        truth[path.stem] = np.asarray(Image.open(path)) >= 128
        path.write_bytes(encode(truth[path.stem]))
    return truth


def zero_one(mask: np.ndarray) -> bytes:
    return png(mask.astype(np.uint8))


def zero_255(mask: np.ndarray) -> bytes:
    return png(mask.astype(np.uint8) * 255)


def test_a_perfect_0_1_submission_scores_dice_1_in_score(workspace: Path) -> None:
    truth = dataset_with_png_masks(Path("data"), zero_255)
    archive = zip_masks(Path("TEAM_task1_run1.zip"), {f"{name}.png": zero_one(mask) for name, mask in truth.items()})
    result = runner.invoke(app, ["score", str(archive), "--truth", "data/masks", "--team", "TEAM"])
    assert result.exit_code == 0, result.output
    scores = json.loads(Path("TEAM_task1_run1_summary.json").read_text())["scores"]
    assert scores["dice"] == pytest.approx(1.0) and scores["iou"] == pytest.approx(1.0)
    assert "0/1" in json.dumps(json.loads(Path("TEAM_task1_run1_summary.json").read_text())["metric_policy"])


def test_0_1_ground_truth_makes_an_empty_submission_score_0(workspace: Path) -> None:
    truth = dataset_with_png_masks(Path("data"), zero_one)
    assert all(mask.any() for mask in truth.values())
    empty = {f"{name}.png": zero_255(np.zeros_like(mask)) for name, mask in truth.items()}
    result = runner.invoke(app, ["score", str(zip_masks(Path("T_task1_run1.zip"), empty)), "--truth", "data/masks",
                                 "--team", "T"])
    assert result.exit_code == 0, result.output
    assert json.loads(Path("T_task1_run1_summary.json").read_text())["scores"]["dice"] == 0.0


def test_data_check_loading_and_validate_agree_on_0_1_masks(workspace: Path) -> None:
    truth = dataset_with_png_masks(Path("data"), zero_one)
    report = check_dataset("data", threads=1)
    assert report.usable and report.empty_masks == []
    assert report.foregrounds == pytest.approx([truth[p.name].mean() for p in report.pairs])
    dataset = open_dataset("data")
    assert all(np.array_equal(dataset.read_mask(name), truth[name]) for name in dataset.names)

    archive = zip_masks(Path("run.zip"), {f"{n}.png": zero_one(m) for n, m in truth.items()})
    read: dict[str, np.ndarray] = {}
    assert validate_archive(archive, image_sizes(Path("data/images")), on_mask=read.__setitem__).ok
    assert all(np.array_equal(read[name], truth[name]) for name in truth)
    assert runner.invoke(app, ["validate", str(archive), "--images", "data/images"]).exit_code == 0


def colour(mask: np.ndarray) -> bytes:
    """Red polyp on black: its luminance (76) would read as background."""
    rgb = np.zeros((*mask.shape, 3), np.uint8)
    rgb[mask] = (255, 0, 0)
    return png(rgb)


def alpha_only(mask: np.ndarray) -> bytes:
    """White everywhere, the polyp drawn only as opacity: a grey reading sees one flat white square."""
    rgba = np.full((*mask.shape, 4), 255, np.uint8)
    rgba[..., 3] = mask * 255
    return png(rgba)


def probability_map(mask: np.ndarray) -> bytes:
    """A blurred mask: soft probabilities over a wide band around the polyp, not two classes."""
    blurred = Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.GaussianBlur(12))
    return png(np.asarray(blurred))


@pytest.mark.parametrize("encode", [colour, alpha_only, probability_map])
def test_a_mask_that_is_not_binary_is_refused_by_run_validate_score_and_data_check(
    workspace: Path, encode: Callable[[np.ndarray], bytes]
) -> None:
    truth = dataset_with_png_masks(Path("data"), zero_255)
    bad = encode(truth[BAD_NAME])
    good = {f"{name}.png": zero_255(mask) for name, mask in truth.items()}
    Path("truth").mkdir()
    for name, data in good.items():
        (Path("truth") / name).write_bytes(data)
    (Path("data/masks") / f"{BAD_NAME}.png").write_bytes(bad)

    checked = runner.invoke(app, ["data", "check", "data"])
    assert checked.exit_code == 1 and says(checked, f"data/masks/{BAD_NAME}.png: not binary")

    trained = runner.invoke(app, ["run", "unet", "--data", "data", *TINY])
    assert trained.exit_code == 2 and says(trained, f"data/masks/{BAD_NAME}.png: not binary"), trained.output
    assert trained.exception is None or isinstance(trained.exception, SystemExit)

    archive = zip_masks(Path("X_task1_run1.zip"), {**good, f"{BAD_NAME}.png": bad})
    validated = runner.invoke(app, ["validate", str(archive), "--images", "data/images"])
    assert validated.exit_code == 1 and says(validated, "not a binary mask")
    assert says(validated, f"masks/{BAD_NAME}.png")

    scored = runner.invoke(app, ["score", str(archive), "--truth", "truth", "--team", "X"])
    assert scored.exit_code == 1 and says(scored, "not a binary mask") and says(scored, f"masks/{BAD_NAME}.png")

    (Path("truth") / f"{BAD_NAME}.png").write_bytes(bad)
    fair = zip_masks(Path("Y_task1_run1.zip"), good)
    against_bad_truth = runner.invoke(app, ["score", str(fair), "--truth", "truth", "--team", "Y"])
    assert against_bad_truth.exit_code == 2 and says(against_bad_truth, f"truth/{BAD_NAME}.png: not binary")
    assert not Path("Y_task1_run1_scores.csv").exists()


def test_16_bit_masks_and_images_are_scaled_not_clipped(workspace: Path) -> None:
    truth = dataset_with_png_masks(Path("data"), zero_255)
    rng = np.random.default_rng(0)
    for name, mask in truth.items():  # polyp at full scale, background with low-level noise (< 1/256 of the range)
        noisy = np.where(mask, 65535, rng.integers(0, 200, mask.shape)).astype(np.uint16)
        (Path("data/masks") / f"{name}.png").write_bytes(png(noisy))
    height, width = truth[BAD_NAME].shape
    ramp = np.tile(np.linspace(0, 65535, width).astype(np.uint16), (height, 1))
    Image.fromarray(ramp).save(Path("data/images") / f"{BAD_NAME}.png")
    (Path("data/images") / f"{BAD_NAME}.jpg").unlink()

    dataset = open_dataset("data")
    assert all(np.array_equal(dataset.read_mask(name), truth[name]) for name in dataset.names)
    image = dataset.read_image(BAD_NAME)
    np.testing.assert_allclose(image[0, :, 0], ramp[0] / 257, atol=1)  # not 255 from the second column on
    assert check_dataset("data", threads=1).foregrounds == pytest.approx([m.mean() for m in truth.values()])

    noisy_submission = {f"{name}.png": (Path("data/masks") / f"{name}.png").read_bytes() for name in truth}
    Path("truth").mkdir()
    for name, mask in truth.items():
        (Path("truth") / f"{name}.png").write_bytes(zero_255(mask))
    archive = zip_masks(Path("S_task1_run1.zip"), noisy_submission)
    assert runner.invoke(app, ["score", str(archive), "--truth", "truth", "--team", "S"]).exit_code == 0
    assert json.loads(Path("S_task1_run1_summary.json").read_text())["scores"]["dice"] == pytest.approx(1.0)


def test_real_kvasir_seg_jpeg_masks_read_as_before_and_the_same_as_0_1_pngs(
    kvasir_path: Path, tmp_path: Path
) -> None:
    dataset = open_dataset(kvasir_path)
    for name in dataset.names[::200]:
        with Image.open(kvasir_path / "masks" / f"{name}.jpg") as jpeg:
            before = np.asarray(jpeg.convert("L")) >= 128  # the rule before the organisers' reading
        assert np.array_equal(dataset.read_mask(name), before)
        height, width = before.shape
        for encode in (zero_one, zero_255):
            archive = zip_masks(tmp_path / f"{name}.zip", {f"{name}.png": encode(before)})
            read: dict[str, np.ndarray] = {}
            assert validate_archive(archive, {name: (width, height)}, on_mask=read.__setitem__).ok
            assert np.array_equal(read[name], before), encode.__name__
