"""`medico evaluate`, `medico predict`, `medico show` and `medico overlay` on a tiny checkpoint and synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner, Result

from medico.cli import app
from medico.data import open_dataset, resolve_split
from medico.metrics import METRIC_NAMES
from medico.overlay import PREDICTION_COLOUR, TRUTH_COLOUR

runner = CliRunner()


def invoke(*args: object) -> Result:
    """Run the command line on a wide terminal, so that rich does not wrap messages."""
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "10000"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_evaluate_a_run_scores_its_validation_split_and_writes_the_csv(run_dir: Path) -> None:
    result = invoke("evaluate", "1", "--device", "cpu")
    assert result.exit_code == 0, result.output
    for name in METRIC_NAMES:
        assert name in result.output
    assert "±" in result.output and "both empty" in result.output
    frame = pd.read_csv(run_dir / "evaluations" / "1-best" / "per_image.csv")
    dataset = open_dataset(None)
    assert list(frame["name"]) == list(resolve_split(dataset, "auto").val)
    first = frame.iloc[0]
    assert (first["height"], first["width"]) == dataset.read_mask(first["name"]).shape
    summary = json.loads((run_dir / "evaluations" / "1-best" / "metrics.json").read_text())["summary"]
    assert summary["n_images"] == len(frame)
    assert summary["dice"] == pytest.approx(frame["dice"].mean())


def test_evaluate_a_checkpoint_file_writes_where_told(run_dir: Path, workspace: Path) -> None:
    result = invoke("evaluate", run_dir / "checkpoints" / "best.pt", "--out", workspace / "here", "--threshold", "0.7")
    assert result.exit_code == 0, result.output
    saved = json.loads((workspace / "here" / "metrics.json").read_text())
    assert saved["policy"]["threshold"] == 0.7


def test_evaluate_with_a_missing_run_or_a_bad_option_is_a_clean_error(run_dir: Path) -> None:
    result = invoke("evaluate", "7")
    assert result.exit_code == 2 and "run '7' not found" in result.output
    result = invoke("evaluate", "1", "--precision", "fp8")
    assert result.exit_code == 2 and "--precision" in result.output and "'fp8'" in result.output
    result = invoke("evaluate", "1", "--split", "nonsense")
    assert result.exit_code == 2 and "nonsense" in result.output


def test_predict_writes_binary_masks_at_each_images_size(run_dir: Path, workspace: Path) -> None:
    images = workspace / "images"
    images.mkdir()
    sizes = {"a": (40, 60), "b": (33, 17)}
    for name, (height, width) in sizes.items():
        Image.fromarray(np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(
            images / f"{name}.jpg"
        )
    result = invoke("predict", "latest", images, "--out", workspace / "masks", "--batch-size", "1")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (workspace / "masks").iterdir()) == ["a.png", "b.png"]
    for name, size in sizes.items():
        mask = Image.open(workspace / "masks" / f"{name}.png")
        assert mask.mode == "L" and mask.size == size[::-1]
        assert set(np.unique(np.asarray(mask))) <= {0, 255}


def test_predict_refuses_an_empty_folder(run_dir: Path, workspace: Path) -> None:
    (workspace / "empty").mkdir()
    result = invoke("predict", "1", workspace / "empty", "--out", workspace / "masks")
    assert result.exit_code == 2 and "no images found" in result.output


def test_show_draws_the_best_and_worst_validation_images_and_a_contact_sheet(run_dir: Path) -> None:
    assert invoke("evaluate", "1", "--out", run_dir).exit_code == 0  # what `medico run` leaves behind
    result = invoke("show", "1", "--count", "2")
    assert result.exit_code == 0, result.output
    written = {p.name for p in (run_dir / "overlays").iterdir()}
    assert "contact_sheet.png" in written
    assert sorted(n.split("-")[0] for n in written - {"contact_sheet.png"}) == ["best", "best", "worst", "worst"]
    frame = pd.read_csv(run_dir / "per_image.csv")
    best_name = frame.sort_values(["iou", "dice"], ascending=False).iloc[0]["name"]
    assert f"best-01-{best_name}.png" in written


def test_show_without_per_image_scores_says_how_to_get_them(run_dir: Path) -> None:
    result = invoke("show", "1")
    assert result.exit_code == 2 and "per_image.csv is missing" in result.output and "medico evaluate" in result.output


def test_overlay_outlines_truth_green_and_prediction_red(workspace: Path) -> None:
    Image.fromarray(np.full((60, 80, 3), 90, np.uint8)).save(workspace / "image.png")
    truth = np.zeros((60, 80), np.uint8)
    truth[10:40, 10:40] = 255
    pred = np.zeros((60, 80), np.uint8)
    pred[20:50, 30:70] = 255
    Image.fromarray(truth).save(workspace / "truth.png")
    Image.fromarray(pred).save(workspace / "pred.png")
    result = invoke("overlay", "image.png", "truth.png", "--pred", "pred.png", "--out", "out.png")
    assert result.exit_code == 0, result.output
    drawn = np.asarray(Image.open(workspace / "out.png"))
    assert tuple(drawn[10, 20]) == TRUTH_COLOUR and tuple(drawn[49, 50]) == PREDICTION_COLOUR
    assert tuple(drawn[0, 0]) == (90, 90, 90)


def test_overlay_refuses_a_mask_of_another_size(workspace: Path) -> None:
    Image.fromarray(np.zeros((60, 80, 3), np.uint8)).save(workspace / "image.png")
    Image.fromarray(np.zeros((80, 60), np.uint8)).save(workspace / "truth.png")
    result = invoke("overlay", "image.png", "truth.png", "--out", "out.png")
    assert result.exit_code == 2 and "80x60" in result.output and "60x80" in result.output
