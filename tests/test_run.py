"""``medico run`` and ``medico train`` end to end on the synthetic set with a 4-feature U-Net at 32 px."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from medico.cli import app
from medico.data.synthetic import SyntheticDataset, write_synthetic_kvasir
from medico.download import file_sha256
from medico.engine.training import Trainer
from medico.errors import MedicoWarning
from medico.leaderboard import LeaderboardStore
from medico.runs.checkpoint import load_checkpoint
from medico.runs.folder import RunNotFoundError, find_run, resolve_checkpoint

runner = CliRunner()
TINY = ["--option", "init_features=4", "--input-size", "32"]
NAN_MODEL = f"{Path(__file__).with_name('nan_model.py')}:nan_model"


def said(result: object) -> str:
    """The command's output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def history(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_run_trains_on_announced_synthetic_data_records_the_run_and_ranks_it(small_data: Path) -> None:
    result = runner.invoke(app, ["run", "unet", *TINY, "--epochs", "1", "--team", "alice"])
    assert result.exit_code == 0, result.output
    assert "SYNTHETIC" in said(result) and "--data" in said(result)
    assert "epoch 1 train loss" in said(result) and "val mIoU" in said(result)
    assert "rank 1 of 1" in said(result)

    run_dir = small_data / "runs" / "1-unet"
    for name in ("config.json", "environment.json", "dataset.json", "history.csv", "training_curve.png",
                 "per_image.csv", "metrics.json", "summary.json", "checkpoints/best.pt", "checkpoints/last.pt"):
        assert (run_dir / name).is_file(), name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["input_size"] == 32 and config["sources"]["input_size"] == "command line"
    assert config["sources"]["batch_size"] == "dataset hints"
    dataset = json.loads((run_dir / "dataset.json").read_text())
    assert dataset["synthetic"] and len(dataset["fingerprint"]) == 64 and dataset["split"]["digest"]
    assert json.loads((run_dir / "environment.json").read_text())["torch"]
    assert len(history(run_dir)) == 1
    with Image.open(run_dir / "training_curve.png") as curve:
        assert curve.format == "PNG" and curve.width > 300
    summary = json.loads((run_dir / "summary.json").read_text())
    assert "both empty" in summary["metric_policy"]["empty"]
    assert summary["fps"]["kind"] == "model" and summary["fps"]["batch_size"] == 1 and summary["fps"]["fps"] > 0
    assert summary["validation"]["scores"]["n_images"] == dataset["split"]["n_val"]
    assert config["workers"] == "auto" and summary["training"]["loader_workers"] == 0  # a CPU's threads compute

    [entry] = LeaderboardStore().entries(split="val")
    assert (entry.team, entry.model, entry.run, entry.source) == ("alice", "unet", 1, "measured")
    assert entry.sha256 == file_sha256(run_dir / "checkpoints" / "best.pt")
    assert entry.iou == pytest.approx(summary["validation"]["scores"]["iou"])
    assert entry.fps_kind == "model" and "SYNTHETIC" in entry.note
    assert entry.fps_precision == summary["fps"]["precision"] == summary["training"]["precision"]
    assert entry.dataset == f"synthetic {entry.dataset_fingerprint[:8]}"  # never ranked with real-data runs


def test_a_run_without_team_counts_for_medico_team_and_says_where_its_team_came_from(
    small_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDICO_TEAM", "polyp-lab")
    result = runner.invoke(app, ["run", "unet", *TINY, "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "added for team polyp-lab, from $MEDICO_TEAM;" in said(result)
    [entry] = LeaderboardStore().entries(split="val")
    assert entry.team == "polyp-lab"
    config = json.loads((small_data / "runs" / "1-unet" / "config.json").read_text())
    assert (config["team"], config["sources"]["team"]) == ("polyp-lab", "$MEDICO_TEAM")


def test_piped_output_keeps_each_status_line_whole_and_lays_the_table_out_wide(
    small_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "root")
    result = runner.invoke(app, ["run", "unet", *TINY, "--epochs", "1"], env={"COLUMNS": None, "MEDICO_TEAM": None})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    [epoch] = [line for line in lines if line.startswith("epoch")]
    assert len(epoch) > 80 and epoch.endswith("img/s) best"), "one line, not wrapped at 80 columns"
    [announced] = [line for line in lines if line.startswith("1-unet: unet")]
    assert announced.endswith(", seed 0")
    [ranked] = [line for line in lines if line.startswith("leaderboard (added")]
    assert ranked.startswith("leaderboard (added for team root, your login name: --team NAME or MEDICO_TEAM=NAME")
    assert ranked.endswith("):"), "the team's origin and how to name one, on the line that ranks the run"
    assert any("┃ precision" in line for line in lines), "a pipe is no narrow terminal: every column shows"


def test_an_unplain_medico_team_is_refused_before_a_run_folder_exists(
    small_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDICO_TEAM", "a/b")
    result = runner.invoke(app, ["run", "unet", *TINY])
    assert result.exit_code != 0 and "MEDICO_TEAM 'a/b': expected a plain name" in said(result)
    assert not (small_data / "runs").exists()


def test_train_with_a_spec_and_a_config_file_records_the_run_without_fps_or_leaderboard(small_data: Path) -> None:
    (small_data / "tiny.toml").write_text("input_size = 32\nepochs = 1\n[options]\ninit_features = 4\n")
    result = runner.invoke(app, ["train", "medico.models.unet:unet", "--config", "tiny.toml", "--workers", "1"])
    assert result.exit_code == 0, result.output
    [run_dir] = (small_data / "runs").iterdir()
    best = load_checkpoint(run_dir / "checkpoints" / "best.pt", model="medico.models.unet:unet")
    assert best.config["model"] == "medico.models.unet:unet" and best.model_options == {"init_features": 4}
    assert best.config["sources"]["input_size"] == "--config tiny.toml"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["fps"] is None and summary["training"]["loader_workers"] == 1
    assert LeaderboardStore().entries() == []


def test_an_interrupted_run_resumes_from_its_last_epoch(small_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    validate = Trainer.validate
    calls = {"n": 0}

    def interrupt_in_epoch_two(self: Trainer, observer: object = None) -> dict[str, float]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return validate(self, observer)

    monkeypatch.setattr(Trainer, "validate", interrupt_in_epoch_two)
    stopped = runner.invoke(app, ["run", "unet", *TINY, "--epochs", "3", "--no-leaderboard"])
    assert stopped.exit_code == 130
    assert "holds epoch 1" in said(stopped) and "medico run unet --resume 1-unet" in said(stopped)
    run_dir = small_data / "runs" / "1-unet"
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt").training["epoch"] == 1
    first_epoch = history(run_dir)[0]

    monkeypatch.setattr(Trainer, "validate", validate)
    refused = runner.invoke(app, ["run", "unet", "--resume", "1", "--lr", "0.1"])
    assert refused.exit_code == 2 and "cannot change lr" in said(refused)
    other = SyntheticDataset(seed=1, count=24)
    with monkeypatch.context() as patch:
        patch.setattr("medico.data.resolve.SyntheticDataset", lambda: other)
        changed = runner.invoke(app, ["run", "unet", "--resume", "1"])
    assert changed.exit_code == 2 and "run 1-unet was trained on" in said(changed) and "changed" in said(changed)
    resumed = runner.invoke(app, ["run", "unet", "--resume", "1", "--no-leaderboard"])
    assert resumed.exit_code == 0, resumed.output
    assert "resuming 1-unet after epoch 1" in said(resumed)
    rows = history(run_dir)
    assert [row["epoch"] for row in rows] == ["1", "2", "3"] and rows[0] == first_epoch
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt").training["epoch"] == 3


def test_a_nan_loss_ends_the_run_with_a_clear_message(small_data: Path) -> None:
    result = runner.invoke(app, ["run", NAN_MODEL, "--input-size", "32", "--epochs", "1"])
    assert result.exit_code == 2
    assert "loss became nan at epoch 1, step 1" in said(result) and "Traceback" not in result.output


def test_an_unknown_builder_option_is_refused_before_a_run_folder_exists(small_data: Path) -> None:
    result = runner.invoke(app, ["run", "unet", "--option", "width=3"])
    assert result.exit_code == 2 and "does not accept options" in said(result)
    assert not (small_data / "runs").exists()


def test_missing_pretrained_weights_are_refused_without_leaving_a_run_folder(small_data: Path) -> None:
    result = runner.invoke(app, ["run", "unet", *TINY, "--pretrained", "no/such/weights.pt"])
    assert result.exit_code == 2 and "--pretrained 'no/such/weights.pt'" in said(result)
    assert list((small_data / "runs").iterdir()) == []


def test_a_run_trains_and_scores_on_a_users_split_folder(workspace: Path) -> None:
    data = write_synthetic_kvasir(workspace / "kvasir", count=8)
    lists = workspace / "my-split"
    lists.mkdir()
    (lists / "train.txt").write_text("\n".join(f"synthetic-{i:04d}" for i in range(5)) + "\n")
    (lists / "val.txt").write_text("synthetic-0006\nsynthetic-0007\n")
    result = runner.invoke(app, ["train", "unet", "--data", str(data), "--split", "my-split", *TINY, "--epochs", "1"])
    assert result.exit_code == 0, result.output
    [run_dir] = (workspace / "runs").iterdir()
    recorded = json.loads((run_dir / "dataset.json").read_text())["split"]
    assert recorded["train"] == [f"synthetic-{i:04d}" for i in range(5)]
    assert recorded["val"] == ["synthetic-0006", "synthetic-0007"]
    assert json.loads((run_dir / "config.json").read_text())["split"] == str(lists.resolve())

    missing = runner.invoke(app, ["train", "unet", "--data", str(data), "--split", "nowhere", *TINY])
    assert missing.exit_code != 0
    assert "split must be auto, medico2020, random or a folder holding train.txt and val.txt" in said(missing)


def test_a_runs_validation_scores_are_those_of_the_masks_submit_writes_on_every_cpu_class(
    workspace: Path, cpu_class: str
) -> None:
    """Training runs at the class's fast precision (bf16 where native), but the recorded validation scores are made
    at fp32, as `submit` writes masks: the run's validation images submitted as a test set and scored against their
    truth give the run's own per-image scores."""
    data = write_synthetic_kvasir(workspace / "kvasir", count=12, val_count=4)
    trained = runner.invoke(app, ["run", "unet", *TINY, "--data", str(data), "--split", "medico2020", "--epochs", "1"])
    assert trained.exit_code == 0, trained.output
    [run_dir] = (workspace / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["training"]["precision"] == cpu_class and summary["validation"]["precision"] == "fp32"
    explained = "in fp32 as submissions are written (the epochs above validated in bf16)"
    assert (explained in said(trained)) == (cpu_class == "bf16")  # why the same epoch shows two scores

    names = (data / "splits" / "medico2020" / "val.txt").read_text().split()
    images = workspace / "val-images"
    images.mkdir()
    for name in names:
        (images / f"{name}.jpg").write_bytes((data / "images" / f"{name}.jpg").read_bytes())
    submitted = runner.invoke(app, ["submit", "--team", "T", "--checkpoint", "latest", "--images", str(images)])
    assert submitted.exit_code == 0, submitted.output
    archive = workspace / "submissions" / "T" / "T_task1_run1.zip"
    scored = runner.invoke(app, ["score", str(archive), "--truth", str(data / "masks"), "--team", "T",
                                 "--images", str(images)])
    assert scored.exit_code == 0, scored.output
    with open(run_dir / "per_image.csv", newline="") as handle:
        validation = {row["name"]: row for row in csv.DictReader(handle)}
    [scores_file] = workspace.glob("**/T_task1_run1_scores.csv")
    with open(scores_file, newline="") as handle:
        submitted_scores = {row["name"]: row for row in csv.DictReader(handle)}
    assert submitted_scores.keys() == validation.keys() == set(names)
    for name in names:
        assert [submitted_scores[name][c] for c in ("tp", "fp", "fn", "tn")] == [
            validation[name][c] for c in ("tp", "fp", "fn", "tn")
        ], name


def test_a_named_run_is_labelled_by_its_name_and_found_by_it_beside_older_runs(small_data: Path, run_dir: Path) -> None:
    """The workspace already holds run 1 (a unet): the named run is runs/2-alpha-quick, and its name, not a number
    the user must guess, picks it in every command."""
    result = runner.invoke(app, ["train", "unet", *TINY, "--epochs", "1", "--name", "alpha-quick"])
    assert result.exit_code == 0, result.output
    named = small_data / "runs" / "2-alpha-quick"
    assert "2-alpha-quick" in said(result)
    config = json.loads((named / "config.json").read_text())
    assert config["name"] == "alpha-quick" and config["sources"]["name"] == "command line"
    assert resolve_checkpoint("alpha-quick") == named / "checkpoints" / "best.pt"
    assert find_run("unet").path == run_dir  # a model's name labels its unnamed runs
    scored = runner.invoke(app, ["evaluate", "alpha-quick", "--device", "cpu"])
    assert scored.exit_code == 0, scored.output
    assert list((named / "evaluations").iterdir()) == [named / "evaluations" / "1-best"]
    renamed = runner.invoke(app, ["train", "unet", "--resume", "alpha-quick", "--name", "beta"])
    assert renamed.exit_code == 2 and "cannot change name" in said(renamed)


def _fake_run(workspace: Path, name: str, *, best: bool = True) -> Path:
    """``runs/NAME/``, with a (dummy) best checkpoint unless told otherwise."""
    folder = workspace / "runs" / name / "checkpoints"
    folder.mkdir(parents=True)
    if best:
        (folder / "best.pt").write_bytes(b"weights")
    return folder.parent


def test_a_name_carried_by_several_runs_names_the_newest_and_says_which(workspace: Path) -> None:
    for name in ("1-alpha", "2-unet", "3-alpha", "4-unet"):
        _fake_run(workspace, name)
    _fake_run(workspace, "5-alpha", best=False)  # failed before its first epoch ended
    with pytest.warns(MedicoWarning, match=r"^alpha is run 3-alpha: 3 runs are labelled so \(also 1-alpha;.*skipped "
                      r"5-alpha \(no checkpoints/best.pt"):
        assert find_run("alpha").name == "3-alpha"
    with pytest.warns(MedicoWarning, match=r"^unet is run 4-unet: 2 runs are labelled so \(also 2-unet;"):
        assert resolve_checkpoint("unet") == workspace / "runs" / "4-unet" / "checkpoints" / "best.pt"
    assert find_run("2").name == "2-unet" and find_run("1-alpha").name == "1-alpha"  # numbers and ids unchanged


def test_a_models_name_picks_its_newest_unnamed_run_and_names_the_newer_named_ones(workspace: Path) -> None:
    """`--checkpoint attunet` in a workspace whose newest attunet run is named 'first': the user may mean that one."""
    for name, model in (("1-attunet", "attunet"), ("2-first", "attunet"), ("3-other", "unet")):
        (_fake_run(workspace, name) / "config.json").write_text(json.dumps({"model": model}))
    with pytest.warns(MedicoWarning, match=r"attunet is run 1-attunet, its newest run without a name; newer attunet "
                      r"runs carry names: 2-first"):
        assert find_run("attunet").name == "1-attunet"


def test_a_file_named_like_a_run_name_is_refused_rather_than_guessed(workspace: Path) -> None:
    _fake_run(workspace, "1-alpha")
    (workspace / "alpha").write_bytes(b"another checkpoint")
    with pytest.raises(RunNotFoundError, match="'alpha' names both the file .* and run 1-alpha: write ./alpha"):
        resolve_checkpoint("alpha")


@pytest.mark.parametrize(
    ("name", "fault"),
    [
        ("3", "it is a number"),
        ("latest", "latest names the newest run"),
        ("2-unet", "reads as a run id"),
        ("attunet", "it is a model's name"),  # --checkpoint attunet would pick this unet run
        ("../elsewhere", "'/'"),
        ("alpha quick", "it contains ' '"),
        ("alpha\x1b[2J", "control characters"),
        (".hidden", "starts with a dot"),
    ],
)
def test_a_name_that_would_read_as_another_run_or_leave_the_runs_folder_is_refused(
    small_data: Path, name: str, fault: str
) -> None:
    result = runner.invoke(app, ["train", "unet", *TINY, "--name", name])
    assert result.exit_code == 2 and "--name" in said(result) and fault in said(result), result.output
    assert not (small_data / "runs").exists()
