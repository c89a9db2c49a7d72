"""``medico submit`` task 1: one single-channel 0/255 PNG per image, exactly the image's size, plus a manifest; a
summary naming what it was made from; the same masks never twice without --force."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import medico
from medico.cli import app
from medico.data import resolve_split
from medico.data.io import list_images
from medico.data.synthetic import SyntheticDataset
from medico.download import file_sha256
from medico.runs.checkpoint import Checkpoint, save_checkpoint
from medico.runs.dataset import DataRecord
from medico.submission import write_task1
from medico.submission.repeats import RepeatedMasksError

SIZES = [(72, 40), (33, 61), (96, 54)]  # (width, height), none square


def _tiny_checkpoint(path: Path, seed: int = 0, **fields: object) -> Path:
    torch.manual_seed(seed)
    model = medico.create_model("unet", init_features=4)
    return save_checkpoint(path, Checkpoint("unet", {"init_features": 4}, 32, model.state_dict(), **fields))


@pytest.fixture
def checkpoint(workspace: Path) -> Path:
    return _tiny_checkpoint(workspace / "tiny.pt")


@pytest.fixture
def images(workspace: Path) -> Path:
    folder = workspace / "test-images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index, (width, height) in enumerate(SIZES):
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(folder / f"frame-{index}.jpg")
    return folder


def _submit(*args: str) -> object:
    return CliRunner().invoke(app, ["submit", *args])


def _members(archive: Path) -> dict[str, Image.Image]:
    with zipfile.ZipFile(archive) as zipped:
        return {name: Image.open(io.BytesIO(zipped.read(name))) for name in zipped.namelist()}


def test_the_archive_holds_one_binary_grey_png_per_image_at_its_size(
    workspace: Path, checkpoint: Path, images: Path
) -> None:
    result = _submit("--team", "Polyp Hunters", "--checkpoint", str(checkpoint), "--images", str(images))
    assert result.exit_code == 0, result.output
    archive = workspace / "submissions" / "Polyp Hunters" / "Polyp Hunters_task1_run1.zip"
    masks = _members(archive)
    assert sorted(masks) == [f"frame-{i}.png" for i in range(len(SIZES))]
    for index, size in enumerate(SIZES):
        mask = masks[f"frame-{index}.png"]
        assert mask.format == "PNG" and mask.mode == "L" and mask.size == size
        assert set(np.unique(np.asarray(mask))) <= {0, 255}
    assert file_sha256(archive) in result.output
    assert [p.name for p in archive.parent.iterdir() if p.name.startswith(".")] == []


def test_the_manifest_beside_the_archive_describes_the_run(workspace: Path, checkpoint: Path, images: Path) -> None:
    assert _submit("--team", "T", "--checkpoint", str(checkpoint), "--images", str(images)).exit_code == 0
    archive = workspace / "submissions" / "T" / "T_task1_run1.zip"
    manifest = json.loads(archive.with_suffix(".json").read_text())
    assert manifest["model"] == "unet" and manifest["model_options"] == {"init_features": 4}
    assert manifest["checkpoint_sha256"] == file_sha256(checkpoint)
    assert manifest["archive_sha256"] == file_sha256(archive)
    assert manifest["input_size"] == 32 and manifest["threshold"] == 0.5 and manifest["images"] == len(SIZES)
    assert manifest["medico_version"] == medico.__version__ and manifest["created"]
    assert not any(name.endswith(".json") for name in _members(archive))


def test_runs_are_numbered_and_never_overwritten_without_force(workspace: Path, checkpoint: Path, images: Path) -> None:
    base = ["--team", "T", "--checkpoint", str(checkpoint), "--images", str(images)]
    assert _submit(*base).exit_code == 0
    other = _tiny_checkpoint(workspace / "other.pt", seed=1)
    assert _submit("--team", "T", "--checkpoint", str(other), "--images", str(images)).exit_code == 0
    folder = workspace / "submissions" / "T"
    assert sorted(p.name for p in folder.glob("*.zip")) == ["T_task1_run1.zip", "T_task1_run2.zip"]
    first = (folder / "T_task1_run1.zip").stat().st_mtime_ns
    refused = _submit(*base, "--run", "1")
    assert refused.exit_code == 2 and "--force" in refused.output
    assert (folder / "T_task1_run1.zip").stat().st_mtime_ns == first
    assert _submit(*base, "--run", "1", "--force").exit_code == 0  # its own masks again, in its own slot
    limited = _submit(*base, "--max-runs", "2")
    assert limited.exit_code == 2 and "at most 2" in limited.output


def _text(result: object) -> str:
    return " ".join(result.output.split())  # type: ignore[attr-defined]


def test_the_summary_names_the_model_the_checkpoint_and_the_run_it_was_trained_in(
    workspace: Path, images: Path
) -> None:
    dataset = SyntheticDataset(seed=0, count=4)
    record = DataRecord.of(dataset, resolve_split(dataset, "random"))
    run = workspace / "runs" / "9-unet"
    _tiny_checkpoint(run / "checkpoints" / "best.pt", metrics=record.checkpoint_metrics())
    result = _submit("--team", "T", "--checkpoint", "9", "--images", str(images), "--tta", "flip")
    assert result.exit_code == 0, result.output
    said = _text(result)
    assert "model │ unet (tta flip)" in said
    made = f"made from {run / 'checkpoints' / 'best.pt'} (unet): training run runs/9-unet, trained on synthetic "
    assert made in said
    manifest = json.loads((workspace / "submissions" / "T" / "T_task1_run1.json").read_text())
    assert manifest["training_run"] == "runs/9-unet" and manifest["trained_on"] == record.description

    copied = workspace / "copied.pt"  # the same checkpoint kept outside any run still says what it was trained on
    copied.write_bytes((run / "checkpoints" / "best.pt").read_bytes())
    result = _submit("--team", "T", "--checkpoint", str(copied), "--images", str(images), "--tta", "none")
    assert result.exit_code == 0, result.output
    assert f"made from {copied} (unet): no training run (a checkpoint file outside any run folder), trained on " \
           "synthetic" in _text(result)


def test_an_ensembles_summary_names_every_member_and_a_loose_file_as_outside_any_run(
    workspace: Path, run_dir: Path, checkpoint: Path, images: Path
) -> None:
    result = _submit("--team", "T", "--checkpoint", "1", "--checkpoint", str(checkpoint), "--images", str(images))
    assert result.exit_code == 0, result.output
    said = _text(result)
    assert "model │ unet (ensemble of 2)" in said
    assert "training run runs/1-unet, its data not recorded" in said
    assert f"made from {checkpoint} (unet): no training run (a checkpoint file outside any run folder), its data not " \
           "recorded" in said


def test_a_local_archive_says_it_gets_no_score_here_and_where_the_runs_score_is(
    workspace: Path, run_dir: Path, images: Path
) -> None:
    result = _submit("--team", "T", "--checkpoint", "1", "--images", str(images))
    assert result.exit_code == 0, result.output
    said = _text(result)
    assert "no public ground truth, so this archive gets no score here" in said
    assert "medico score submissions/T/T_task1_run1.zip --truth MASKS --team T" in said
    assert "`medico leaderboard` shows the validation score of runs/1-unet (the val split" in said


def test_the_same_masks_again_are_refused_and_nothing_is_written(
    workspace: Path, checkpoint: Path, images: Path
) -> None:
    base = ["--team", "T", "--checkpoint", str(checkpoint), "--images", str(images)]
    assert _submit(*base).exit_code == 0
    folder = workspace / "submissions" / "T"
    with pytest.raises(RepeatedMasksError, match="T_task1_run1.zip already holds these masks .*--force"):
        write_task1(checkpoint, list_images(images), workspace / "submissions", "T")
    refused = _submit(*base)
    assert refused.exit_code == 2 and "pass --force to write them anyway" in _text(refused)
    assert sorted(p.name for p in folder.iterdir()) == ["T_task1_run1.json", "T_task1_run1.zip"]


PLUGIN = """
import os

from torch import nn


class Signed(nn.Module):
    \"\"\"Its logits' sign is read from the environment at each call: as if its file were edited between submits.\"\"\"

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, x):
        return float(os.environ.get("SIGNED_SIGN", "1")) * self.conv(x)


def build():
    return Signed()
"""


def test_new_masks_from_the_same_checkpoint_are_a_new_run(
    workspace: Path, images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Masks depend on more than a manifest records (a file plugin's code, medico's version, the CPU's kernels): the
    same checkpoint, options and images with new masks are never refused as a repeat."""
    plugin = workspace / "signed.py"
    plugin.write_text(PLUGIN)
    spec = f"{plugin}:build"
    torch.manual_seed(0)
    weights = save_checkpoint(workspace / "signed.pt", Checkpoint(spec, {}, 32, medico.create_model(spec).state_dict()))
    base = ["--team", "T", "--checkpoint", str(weights), "--model", spec, "--images", str(images)]
    assert _submit(*base).exit_code == 0
    monkeypatch.setenv("SIGNED_SIGN", "-1")
    again = _submit(*base)
    assert again.exit_code == 0, again.output
    assert (workspace / "submissions" / "T" / "T_task1_run2.zip").is_file()


def test_masks_equal_to_an_earlier_archive_are_refused_before_writing_when_no_manifest_proves_it(
    workspace: Path, checkpoint: Path, images: Path
) -> None:
    base = ["--team", "T", "--checkpoint", str(checkpoint), "--images", str(images)]
    assert _submit(*base).exit_code == 0
    folder = workspace / "submissions" / "T"
    (folder / "T_task1_run1.json").unlink()
    refused = _submit(*base)
    assert refused.exit_code == 2
    assert "T_task1_run1.zip already holds these masks (the same SHA-256)" in _text(refused)
    assert sorted(p.name for p in folder.iterdir()) == ["T_task1_run1.zip"]


def test_force_writes_the_same_masks_as_another_run(workspace: Path, checkpoint: Path, images: Path) -> None:
    base = ["--team", "T", "--checkpoint", str(checkpoint), "--images", str(images)]
    assert _submit(*base).exit_code == 0
    assert _submit(*base, "--force").exit_code == 0
    folder = workspace / "submissions" / "T"
    assert file_sha256(folder / "T_task1_run2.zip") == file_sha256(folder / "T_task1_run1.zip")


def test_a_path_as_team_name_is_refused_before_anything_is_written(workspace: Path, checkpoint: Path) -> None:
    result = _submit("--team", "../escape", "--checkpoint", str(checkpoint))
    assert result.exit_code == 2 and "--team" in result.output
    assert not (workspace / "escape").exists() and not (workspace / "submissions").exists()


def test_without_images_or_checkpoint_it_uses_synthetic_images_and_the_latest_run(workspace: Path) -> None:
    _tiny_checkpoint(workspace / "runs" / "1-unet" / "checkpoints" / "best.pt")
    result = _submit("--team", "T")
    assert result.exit_code == 0, result.output
    assert "synthetic test images" in result.output
    masks = _members(workspace / "submissions" / "T" / "T_task1_run1.zip")
    frames = list_images(workspace / ".cache" / "synthetic-test-images")
    assert sorted(masks) == sorted(f"{p.stem}.png" for p in frames)
    assert all(masks[f"{p.stem}.png"].size == Image.open(p).size for p in frames)


@pytest.mark.slow
def test_the_real_test_set_gives_160_masks_at_their_sizes(workspace: Path, medico2020_test_images: Path) -> None:
    checkpoint = _tiny_checkpoint(workspace / "tiny.pt")
    result = _submit("--team", "T", "--checkpoint", str(checkpoint), "--images", str(medico2020_test_images))
    assert result.exit_code == 0, result.output
    masks = _members(workspace / "submissions" / "T" / "T_task1_run1.zip")
    frames = list_images(medico2020_test_images)
    assert len(frames) == len(masks) == 160
    for frame in frames:
        mask = masks[f"{frame.stem}.png"]
        assert mask.mode == "L" and mask.size == Image.open(frame).size


def test_submit_without_team_takes_medico_team(
    workspace: Path, checkpoint: Path, images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As `medico run` does: a newcomer who exported MEDICO_TEAM once never types --team."""
    monkeypatch.setenv("MEDICO_TEAM", "envteam")
    result = _submit("--checkpoint", str(checkpoint), "--images", str(images))
    assert result.exit_code == 0, result.output
    assert (workspace / "submissions" / "envteam" / "envteam_task1_run1.zip").is_file()
    monkeypatch.setenv("MEDICO_TEAM", "a/b")
    refused = _submit("--checkpoint", str(checkpoint), "--images", str(images))
    assert refused.exit_code == 2 and "$MEDICO_TEAM 'a/b'" in _text(refused) and "--team" not in _text(refused)
