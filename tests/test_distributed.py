"""Training with two gloo processes on the CPU: one run folder, one writer, validation gathered exactly.

A tiny U-Net (4 features, 32 px) trains one epoch on 16 synthetic frames written in Kvasir-SEG's layout (11
train, 5 validation). The learning rate is high enough that the validation masks are neither empty nor full,
so a dropped, repeated or differently batched image would change the scores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from medico.cli import app
from medico.data import open_dataset, resolve_split
from medico.data.synthetic import write_synthetic_kvasir
from medico.engine import training
from medico.engine.distributed import launch, rank
from medico.engine.evaluation import evaluate
from medico.engine.inference import Predictor
from medico.engine.result import COUNT_NAMES
from medico.leaderboard import LeaderboardStore
from medico.runs.checkpoint import load_model

runner = CliRunner()
TINY = ["--option", "init_features=4", "--input-size", "32", "--epochs", "1"]
SETTINGS = "batch_size = 4\neval_batch_size = 2\nlr = 0.05\n"
"""Global batch 4 (2 per process); validation batches of 2, so the 5 images are dealt out 3 and 2."""


@pytest.fixture(scope="module")
def tiny_kvasir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_kvasir(tmp_path_factory.mktemp("data") / "kvasir", count=16, val_count=5)


@pytest.fixture
def settings(workspace: Path) -> Path:
    path = workspace / "tiny.toml"
    path.write_text(SETTINGS)
    return path


def _run_logging_writes(folder: str, args: list[str]) -> None:
    """One training process: log each checkpoint write with the writer's rank, run the CLI, keep its output."""
    save = training.save_checkpoint

    def logged(path: Path, checkpoint: object) -> Path:
        with open(Path(folder) / "writes.txt", "a") as log:
            log.write(f"{rank()} {Path(path).name}\n")
        return save(path, checkpoint)

    training.save_checkpoint = logged
    result = CliRunner().invoke(app, args)
    (Path(folder) / f"output-{rank()}.txt").write_text(result.output)
    if result.exit_code != 0:
        raise RuntimeError(f"rank {rank()} exited with {result.exit_code}: {result.output}")


def test_two_processes_write_one_run_whose_gathered_validation_equals_single_process_scoring(
    workspace: Path, tiny_kvasir: Path, settings: Path, cpu_class: str
) -> None:
    args = ["run", "unet", *TINY, "--data", str(tiny_kvasir), "--config", str(settings), "--team", "ddp"]
    launch(2, _run_logging_writes, str(workspace), args)

    [run_dir] = (workspace / "runs").iterdir()
    assert (workspace / "writes.txt").read_text().split("\n")[:-1] == ["0 best.pt", "0 last.pt"]
    assert "epoch 1 train loss" in " ".join((workspace / "output-0.txt").read_text().split())
    assert (workspace / "output-1.txt").read_text() == ""
    [entry] = LeaderboardStore().entries(split="val")
    assert entry.team == "ddp" and "2 processes" in entry.note
    summary = json.loads((run_dir / "summary.json").read_text())
    cores = len(os.sched_getaffinity(0))
    assert summary["training"]["processes"] == 2 and summary["training"]["threads"] == max(1, cores // 2)
    assert summary["training"]["sync_batchnorm"] is False

    model, checkpoint = load_model(run_dir / "checkpoints" / "best.pt")
    dataset = open_dataset(str(tiny_kvasir))
    split = resolve_split(dataset, "auto")
    threads = torch.get_num_threads()
    torch.set_num_threads(summary["training"]["threads"])  # the same kernels as in the training processes
    try:  # the final scores at the precision of written masks; each epoch's at the training precision
        single, trained = (
            evaluate(Predictor(model, checkpoint.input_size, "cpu", precision), dataset, split.val, batch_size=2)
            for precision in (summary["validation"]["precision"], summary["training"]["precision"])
        )
    finally:
        torch.set_num_threads(threads)
    gathered = pd.read_csv(run_dir / "per_image.csv")
    assert list(gathered["name"]) == list(split.val)
    assert gathered[list(COUNT_NAMES)].to_numpy().tolist() == single.per_image[list(COUNT_NAMES)].to_numpy().tolist()
    assert 0 < single.summary["iou"] < 1 and single.summary["recall"] < 1  # neither empty nor full masks
    assert json.loads((run_dir / "metrics.json").read_text())["summary"] == single.summary
    assert summary["validation"]["scores"] == single.summary
    [epoch] = pd.read_csv(run_dir / "history.csv", ).to_dict("records")
    assert (epoch["val_iou"], epoch["val_dice"]) == (trained.summary["iou"], trained.summary["dice"])


def test_nproc_spawns_the_processes_and_an_error_in_them_is_reported_once_without_a_run_folder(
    workspace: Path, tiny_kvasir: Path, settings: Path
) -> None:
    args = ["train", "unet", *TINY, "--data", str(tiny_kvasir), "--config", str(settings), "--nproc", "2"]
    result = runner.invoke(app, [*args, "--sync-bn"])
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and said.count("SyncBatchNorm needs GPUs") == 1 and "--no-sync-bn" in said
    assert list((workspace / "runs").iterdir()) == []


def test_a_batch_that_does_not_split_over_the_processes_is_refused(workspace: Path, tiny_kvasir: Path) -> None:
    args = ["train", "unet", *TINY, "--data", str(tiny_kvasir), "--batch-size", "5", "--nproc", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "--batch-size 5" in result.output and "multiple of 2" in result.output


def test_nproc_is_refused_under_torchrun(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}.items():
        monkeypatch.setenv(key, value)
    result = runner.invoke(app, ["train", "unet", "--nproc", "2"])
    assert result.exit_code == 2 and "started by torchrun" in " ".join(result.output.split())


def test_sweeps_are_refused_on_several_processes(workspace: Path) -> None:
    result = runner.invoke(app, ["run", "unet", "--seeds", "1,2", "--nproc", "2"])
    assert result.exit_code == 2 and "--folds and --seeds run on one process" in " ".join(result.output.split())
    assert not (workspace / "runs").exists()


def test_torchrun_starts_medico_as_a_module(workspace: Path, tiny_kvasir: Path, settings: Path) -> None:
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    args = ["-m", "medico", "train", "unet", *TINY, "--data", str(tiny_kvasir), "--config", str(settings)]
    done = subprocess.run([*torchrun, *args], capture_output=True, text=True, timeout=300, env=os.environ)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("epoch   1  train loss") == 1
    [run_dir] = (workspace / "runs").iterdir()
    assert json.loads((run_dir / "summary.json").read_text())["training"]["processes"] == 2
