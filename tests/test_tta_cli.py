"""`--tta`, several checkpoints and `--sweep` in evaluate, predict, submit and bench: what each result records, and
bad combinations refused in one line."""

from __future__ import annotations

import json
import re
import sqlite3
import zipfile
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner, Result

from medico.cli import app
from medico.data import open_dataset
from medico.data.synthetic import synthetic_test_images
from medico.leaderboard import Entry, LeaderboardStore
from medico.leaderboard.ranking import select_view
from medico.leaderboard.render import leaderboard_tables
from medico.models import unet
from medico.runs.checkpoint import Checkpoint, save_checkpoint

runner = CliRunner()


def invoke(*args: object) -> Result:
    """Run the command line on a wide terminal, so that rich does not wrap messages."""
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "10000"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def _run(workspace: Path, number: int, seed: int, input_size: int = 32, split: str = "auto") -> Path:
    """A run folder with a tiny untrained U-Net 'trained' on the synthetic set (as conftest's run_dir)."""
    torch.manual_seed(seed)
    folder = workspace / "runs" / f"{number}-unet"
    save_checkpoint(
        folder / "checkpoints" / "best.pt",
        Checkpoint(
            model_spec="unet",
            model_options={"init_features": 4},
            input_size=input_size,
            model=unet(init_features=4).state_dict(),
            config={"model": "unet", "data": None, "split": split, "seed": seed},
        ),
    )
    return folder


@pytest.fixture
def two_runs(run_dir: Path, workspace: Path) -> list[Path]:
    """Runs 1 and 2: two different tiny U-Nets, the second at another input size."""
    return [run_dir, _run(workspace, 2, seed=5, input_size=48)]


def _sweep(workspace: Path, runs: list[object]) -> Path:
    folder = workspace / "runs" / "sweeps" / "1-unet"
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"sweep": folder.name, "runs": [{"run": r} for r in runs]}))
    return folder


def _metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def test_evaluate_records_tta_and_the_ensemble_in_metrics_json(two_runs: list[Path], workspace: Path) -> None:
    result = invoke("evaluate", "1", "--device", "cpu", "--tta", "flip", "--out", workspace / "single")
    assert result.exit_code == 0, result.output
    assert "tta flip" in result.output
    prediction = _metrics(workspace / "single")["prediction"]
    assert prediction["tta"] == "flip" and prediction["ensemble"] == 1
    assert prediction["members"][0]["checkpoint"].endswith("best.pt")

    result = invoke("evaluate", "1", "2", "--device", "cpu", "--out", workspace / "both")
    assert result.exit_code == 0, result.output
    assert "ensemble of 2" in result.output
    prediction = _metrics(workspace / "both")["prediction"]
    assert prediction["tta"] == "none" and prediction["ensemble"] == 2
    assert [m["input_size"] for m in prediction["members"]] == [32, 48]


def test_an_ensemble_of_one_scores_as_the_single_model(run_dir: Path, workspace: Path) -> None:
    assert invoke("evaluate", "1", "--device", "cpu", "--out", workspace / "a").exit_code == 0
    _sweep(workspace, ["1-unet"])
    assert invoke("evaluate", "--sweep", "1", "--device", "cpu", "--out", workspace / "b").exit_code == 0
    a, b = _metrics(workspace / "a"), _metrics(workspace / "b")
    assert a["summary"] == b["summary"] and b["prediction"]["ensemble"] == 1


def test_members_validated_on_other_images_are_refused_unless_a_split_is_chosen(
    run_dir: Path, workspace: Path
) -> None:
    names = sorted(open_dataset(None).names)
    split = workspace / "my-split"
    split.mkdir()
    (split / "val.txt").write_text("\n".join(names[:3]) + "\n")
    (split / "train.txt").write_text("\n".join(names[3:]) + "\n")
    _run(workspace, 2, seed=5, split=str(split))
    result = invoke("evaluate", "1", "2", "--device", "cpu")
    assert result.exit_code != 0 and "pass --split" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = invoke("evaluate", "1", "2", "--device", "cpu", "--split", split, "--out", workspace / "r")
    assert result.exit_code == 0, result.output
    assert _metrics(workspace / "r")["data"]["other_data"] is True


def test_predict_with_several_checkpoints_and_tta_writes_masks_of_each_images_size(
    two_runs: list[Path], workspace: Path
) -> None:
    images = workspace / "images"
    paths = synthetic_test_images(images, count=2)
    result = invoke("predict", "1", two_runs[1] / "checkpoints" / "best.pt", images, "--out", workspace / "m",
                    "--tta", "flip+rot", "--device", "cpu")
    assert result.exit_code == 0, result.output
    for path in paths:
        with Image.open(path) as image, Image.open(workspace / "m" / f"{path.stem}.png") as mask:
            assert mask.size == image.size and set(np.unique(np.asarray(mask))) <= {0, 255}


def test_bad_combinations_are_one_line_errors(two_runs: list[Path], workspace: Path) -> None:
    images = workspace / "images"
    synthetic_test_images(images, count=1)
    cases = [
        (("evaluate", "1", "--tta", "rotate"), "--tta: expected one of none, flip, flip+rot, got 'rotate'"),
        (("predict", "1", "1", images, "--out", workspace / "m"), "is given more than once"),
        (("predict", "--sweep", "9", images, "--out", workspace / "m"), "sweep '9': no such sweep"),
        (("submit", "--team", "T", "--task", "efficiency", "--checkpoint", "1", "--checkpoint", "2"),
         "task 2 packs one checkpoint"),
        (("bench", "1", "--tta", "x"), "--tta: expected one of"),
    ]
    for args, message in cases:
        result = invoke(*args)
        assert result.exit_code != 0 and message in result.output, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (workspace / "m").exists()


@pytest.mark.parametrize("listed", [["../../etc"], ["/abs/1-unet"], "not a list", [7]])
def test_a_sweep_summary_naming_anything_but_run_ids_is_refused(run_dir: Path, workspace: Path, listed) -> None:
    folder = _sweep(workspace, [])
    (folder / "summary.json").write_text(json.dumps({"runs": listed if isinstance(listed, str) else
                                                     [{"run": r} for r in listed]}))
    result = invoke("evaluate", "--sweep", "1-unet")
    assert result.exit_code != 0 and "sweep 1-unet: " in result.output


def test_submit_records_tta_and_members_in_the_manifest(two_runs: list[Path], workspace: Path) -> None:
    images = workspace / "images"
    synthetic_test_images(images, count=2)
    _sweep(workspace, ["1-unet", "2-unet"])
    result = invoke("submit", "--team", "T", "--sweep", "latest", "--tta", "flip", "--images", images)
    assert result.exit_code == 0, result.output
    manifest = json.loads((workspace / "submissions" / "T" / "T_task1_run1.json").read_text())
    assert manifest["tta"] == "flip" and manifest["ensemble"] == 2
    assert [Path(m["checkpoint"]).parts[-3] for m in manifest["members"]] == ["1-unet", "2-unet"]
    assert all(len(m["checkpoint_sha256"]) == 64 for m in manifest["members"])
    with zipfile.ZipFile(workspace / "submissions" / "T" / "T_task1_run1.zip") as archive:
        assert len(archive.namelist()) == 2


def test_the_task2_container_predicts_with_the_tta_it_was_written_with(run_dir: Path, workspace: Path) -> None:
    result = invoke("submit", "--team", "T", "--task", "efficiency", "--checkpoint", "1", "--tta", "flip")
    assert result.exit_code == 0, result.output
    context = workspace / "submissions" / "T" / "T_task2_run1"
    assert "MEDICO_TTA=flip" in (context / "Dockerfile").read_text()
    assert json.loads(context.with_suffix(".json").read_text())["tta"] == "flip"


def test_bench_records_the_tta_of_its_end_to_end_timing(run_dir: Path) -> None:
    result = invoke("bench", "1", "--batch-size", "1", "--repeats", "1", "--warmup", "0", "--tta", "flip",
                    "--json", "b.json", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert json.loads(Path("b.json").read_text())["tta"] == "flip"
    assert "tta flip" in result.output


def test_leaderboard_rows_say_how_they_predicted_and_old_rows_read_as_one_plain_model(workspace: Path) -> None:
    store = LeaderboardStore(workspace / "lb.sqlite")
    store.add(Entry(team="a", model="attunet", dice=0.8, iou=0.7, tta="flip", ensemble=3))
    store.add(Entry(team="b", model="unet", dice=0.7, iou=0.6))
    with sqlite3.connect(workspace / "lb.sqlite") as connection:  # a database written before schema 7
        connection.executescript("ALTER TABLE entries DROP COLUMN tta; ALTER TABLE entries DROP COLUMN ensemble;"
                                 "UPDATE schema_version SET version = 6;")
        connection.execute("INSERT INTO entries (team, model, task, split, source, created) VALUES "
                           "('old', 'unet', 'segmentation', 'val', 'measured', '2020')")
    migrated = LeaderboardStore(workspace / "lb.sqlite").entries(team="old")
    assert [(e.tta, e.ensemble) for e in migrated] == [("none", 1)]
    entries = [Entry(team="a", model="attunet", dice=0.8, iou=0.7, tta="flip", ensemble=3),
               Entry(team="b", model="unet", dice=0.7, iou=0.6)]
    console = Console(file=StringIO(), width=200)
    for table in leaderboard_tables(select_view(entries, "segmentation", "all"), "segmentation", width=200):
        console.print(table)
    shown = console.file.getvalue()
    assert "│ attunet (tta flip, ensemble of 3) │" in shown
    assert re.search(r"│ unet +│", shown), "a single model without augmentation shows its name alone"


def test_the_scorer_takes_tta_and_ensemble_from_a_valid_manifest_only(workspace: Path) -> None:
    from medico.submission.scorer import _manifest_fields

    archive = workspace / "T_task1_run1.zip"
    archive.with_suffix(".json").write_text(json.dumps({"model": "attunet", "tta": "flip+rot", "ensemble": 3}))
    assert _manifest_fields(archive) == {"model": "attunet", "tta": "flip+rot", "ensemble": 3}
    archive.with_suffix(".json").write_text(json.dumps({"model": "m", "tta": "magic", "ensemble": True}))
    assert _manifest_fields(archive) == {"model": "m", "tta": "none", "ensemble": 1}
