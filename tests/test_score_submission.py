"""``medico score``: validate, score against the truth with the evaluation's metric code, record once."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import medico
from medico.cli import app
from medico.data.synthetic import synthetic_frame
from medico.download import file_sha256
from medico.engine.preprocess import normalize, resize_mask, to_tensor
from medico.leaderboard import LeaderboardStore
from medico.leaderboard.ranking import comparison_group
from medico.metrics import METRIC_NAMES, METRIC_POLICY
from medico.runs.checkpoint import Checkpoint, save_checkpoint
from medico.stats.per_image import describe
from medico.submission import mask_png

SIZES = [(80, 48), (48, 72), (96, 40), (64, 56)]  # (width, height), none square


def _frames(seed: int, sizes: list[tuple[int, int]]) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [synthetic_frame(rng, height, width, polyps=1 if i % 4 else 0) for i, (width, height) in enumerate(sizes)]


@pytest.fixture
def test_set(workspace: Path) -> tuple[Path, Path]:
    """Test images of several non-square sizes and their ground-truth masks (PNG, 0/255)."""
    images, truth = workspace / "test-images", workspace / "truth"
    images.mkdir()
    truth.mkdir()
    for index, (image, mask) in enumerate(_frames(7, SIZES)):
        Image.fromarray(image).save(images / f"case{index}.png")
        (truth / f"case{index}.png").write_bytes(mask_png(mask))
    return images, truth


def _trained_checkpoint(path: Path, steps: int = 8) -> Path:
    """A tiny U-Net trained for a few steps on synthetic frames at 32x32."""
    torch.manual_seed(0)
    model = medico.create_model("unet", init_features=4)
    frames = _frames(3, [(48, 40)] * 4)
    x = normalize(to_tensor([image for image, _ in frames], 32))
    y = torch.from_numpy(np.stack([resize_mask(mask, 32) for _, mask in frames])).float()[:, None]
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        optimiser.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(model(x), y).backward()
        optimiser.step()
    return save_checkpoint(path, Checkpoint("unet", {"init_features": 4}, 32, model.eval().state_dict()))


def _perfect_archive(path: Path, truth: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for mask in sorted(truth.iterdir()):
            archive.writestr(f"masks/{mask.name}", mask.read_bytes())
    return path


def _score(*args: str) -> object:
    return CliRunner().invoke(app, ["score", *args])


def test_end_to_end_train_submit_validate_score_and_see_the_leaderboard(
    workspace: Path, test_set: tuple[Path, Path]
) -> None:
    images, truth = test_set
    checkpoint = _trained_checkpoint(workspace / "tiny.pt")
    runner = CliRunner()
    arguments = ["submit", "--team", "E2E", "--checkpoint", str(checkpoint), "--images", str(images)]
    submitted = runner.invoke(app, arguments)
    assert submitted.exit_code == 0, submitted.output
    archive = workspace / "submissions" / "E2E" / "E2E_task1_run1.zip"
    validated = runner.invoke(app, ["validate", str(archive), "--images", str(images)])
    assert validated.exit_code == 0, validated.output

    scored = _score(str(archive), "--truth", str(truth), "--team", "E2E")
    assert scored.exit_code == 0, scored.output
    per_image = pd.read_csv(archive.with_name("E2E_task1_run1_scores.csv"))
    assert sorted(per_image["name"]) == [f"case{i}" for i in range(len(SIZES))]
    (entry,) = LeaderboardStore().entries(split="test")
    assert (entry.team, entry.model, entry.run, entry.source) == ("E2E", "unet", 1, "submission")
    assert entry.sha256 == file_sha256(archive) and entry.n_images == len(SIZES)
    assert entry.iou == pytest.approx(per_image["iou"].mean()) and entry.dice == pytest.approx(per_image["dice"].mean())
    for name in ("iou", "dice"):  # test rows carry the same bootstrap intervals as validation rows
        interval = describe(per_image[name].to_numpy())
        assert (getattr(entry, f"{name}_ci_low"), getattr(entry, f"{name}_ci_high")) == pytest.approx(
            (interval.ci_low, interval.ci_high)
        )


def test_the_truth_itself_scores_one_and_results_sit_next_to_the_archive(
    workspace: Path, test_set: tuple[Path, Path]
) -> None:
    _, truth = test_set
    archive = _perfect_archive(workspace / "Oracle_task1_run2.zip", truth)
    result = _score(str(archive), "--truth", str(truth), "--team", "Oracle")
    assert result.exit_code == 0, result.output
    summary = json.loads((workspace / "Oracle_task1_run2_summary.json").read_text())
    assert all(summary["scores"][name] == 1.0 for name in METRIC_NAMES)
    assert summary["metric_policy"] == METRIC_POLICY and summary["run"] == 2
    assert summary["archive_sha256"] == file_sha256(archive)
    per_image = pd.read_csv(workspace / "Oracle_task1_run2_scores.csv")
    assert len(per_image) == len(SIZES) and (per_image["fp"] == 0).all() and (per_image["fn"] == 0).all()


def test_scores_match_the_metric_on_a_known_prediction(workspace: Path, test_set: tuple[Path, Path]) -> None:
    _, truth = test_set
    with zipfile.ZipFile(workspace / "half.zip", "w") as archive:
        for path in sorted(truth.iterdir()):
            mask = np.asarray(Image.open(path)) >= 128
            width = mask.shape[1]
            prediction = np.zeros_like(mask)
            prediction[:, : width // 2] = mask[:, : width // 2]  # keep only the left half of the polyp
            archive.writestr(path.name, mask_png(prediction))
    assert _score(str(workspace / "half.zip"), "--truth", str(truth), "--team", "Half").exit_code == 0
    rows = pd.read_csv(workspace / "half_scores.csv").set_index("name")
    for path in sorted(truth.iterdir()):
        mask = np.asarray(Image.open(path)) >= 128
        kept, total = mask[:, : mask.shape[1] // 2].sum(), mask.sum()
        expected_recall = 1.0 if total == 0 else kept / total
        assert rows.loc[path.stem, "recall"] == pytest.approx(expected_recall)
        assert rows.loc[path.stem, "precision"] == pytest.approx(1.0 if total == 0 or kept else 0.0)


def test_scoring_the_same_archive_twice_adds_one_entry(workspace: Path, test_set: tuple[Path, Path]) -> None:
    _, truth = test_set
    archive = _perfect_archive(workspace / "T_task1_run1.zip", truth)
    assert _score(str(archive), "--truth", str(truth), "--team", "T").exit_code == 0
    again = _score(str(archive), "--truth", str(truth), "--team", "T")
    assert again.exit_code == 0 and "already on the leaderboard" in again.output
    assert len(LeaderboardStore().entries(split="test")) == 1


def test_a_truth_mask_fixed_between_two_scorings_in_one_process_is_read_again(
    workspace: Path, test_set: tuple[Path, Path]
) -> None:
    """A process keeps the truth's decoded masks: a changed file must not be scored from the old decode."""
    _, truth = test_set
    archive = _perfect_archive(workspace / "T_task1_run1.zip", truth)
    assert _score(str(archive), "--truth", str(truth), "--team", "T").exit_code == 0
    fixed = np.asarray(Image.open(truth / "case1.png")) >= 128
    fixed[: fixed.shape[0] // 2] = False  # the organiser fixes a mask: its top half is not polyp
    (truth / "case1.png").write_bytes(mask_png(fixed))
    assert _score(str(archive), "--truth", str(truth), "--team", "T").exit_code == 0
    rows = pd.read_csv(workspace / "T_task1_run1_scores.csv").set_index("name")
    assert rows.loc["case1", "precision"] < 1.0 and rows.loc["case1", "recall"] == 1.0
    assert (rows.drop(index="case1")["dice"] == 1.0).all()


def test_an_invalid_archive_exits_1_with_the_report_and_records_nothing(
    workspace: Path, test_set: tuple[Path, Path]
) -> None:
    _, truth = test_set
    with zipfile.ZipFile(workspace / "bad.zip", "w") as archive:
        archive.writestr("case0.png", mask_png(np.zeros((80, 48), bool)))  # case0 is 80 wide, 48 high
    database = str(workspace / "lb.sqlite")
    result = _score(str(workspace / "bad.zip"), "--truth", str(truth), "--team", "T", "--db", database)
    assert result.exit_code == 1
    assert "width and height are swapped" in result.output and "case3" in result.output
    assert not (workspace / "bad_scores.csv").exists()
    assert LeaderboardStore(workspace / "lb.sqlite").entries() == []


def test_usage_errors_exit_2(workspace: Path, test_set: tuple[Path, Path]) -> None:
    _, truth = test_set
    archive = _perfect_archive(workspace / "ok.zip", truth)
    assert _score(str(archive), "--team", "T").exit_code == 2
    assert _score(str(archive), "--truth", str(truth), "--team", "a/b").exit_code == 2
    assert _score(str(workspace / "missing.zip"), "--truth", str(truth), "--team", "T").exit_code == 2
    assert _score(str(archive), "--truth", str(workspace / "nowhere"), "--team", "T").exit_code == 2


def test_a_participant_manifest_cannot_break_scoring(workspace: Path, test_set: tuple[Path, Path]) -> None:
    _, truth = test_set
    archive = _perfect_archive(workspace / "M_task1_run1.zip", truth)
    archive.with_suffix(".json").write_text("[not, json")
    assert _score(str(archive), "--truth", str(truth), "--team", "M").exit_code == 0
    (entry,) = LeaderboardStore().entries(team="M")
    assert entry.model == "submission"


def test_a_truth_folder_of_more_images_scores_the_images_named_and_entries_group_by_the_truth_scored(
    workspace: Path, test_set: tuple[Path, Path]
) -> None:
    images, truth = test_set
    answered = workspace / "answered"
    answered.mkdir()
    for mask in sorted(truth.iterdir())[:2]:  # a validation archive: two of the four images
        (answered / mask.name).write_bytes(mask.read_bytes())
    archive = _perfect_archive(workspace / "Val_task1_run1.zip", answered)
    whole = _score(str(archive), "--truth", str(truth), "--team", "Val")
    assert whole.exit_code == 1 and "--names FILE" in " ".join(whole.output.split()), whole.output
    names = workspace / "val.txt"
    names.write_text("case0\ncase1.png\n")
    scored = _score(str(archive), "--truth", str(truth), "--team", "Val", "--names", str(names))
    assert scored.exit_code == 0, scored.output
    missing = workspace / "more.txt"
    missing.write_text("case0\nnot-there\n")
    refused = _score(str(archive), "--truth", str(truth), "--team", "Val", "--names", str(missing), "--run", "2")
    assert refused.exit_code == 2 and "no mask for 1 of the 2 images" in " ".join(refused.output.split())

    other = workspace / "other-truth"  # the same masks, one of them corrected: another truth
    other.mkdir()
    for mask in sorted(answered.iterdir()):
        (other / mask.name).write_bytes(mask.read_bytes())
    (other / "case0.png").write_bytes(mask_png(np.ones((SIZES[0][1], SIZES[0][0]), bool)))
    second = _perfect_archive(workspace / "Other_task1_run1.zip", other)
    assert _score(str(second), "--truth", str(other), "--team", "Other").exit_code == 0
    entries = {entry.team: entry for entry in LeaderboardStore().entries(split="test")}
    assert entries["Val"].n_images == 2 and entries["Val"].dataset.startswith("truth truth ")
    assert entries["Val"].dataset_fingerprint != entries["Other"].dataset_fingerprint
    assert len({comparison_group(entry, "segmentation") for entry in entries.values()}) == 2
