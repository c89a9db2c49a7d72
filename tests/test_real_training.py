"""Training on the real Kvasir-SEG learns: a short schedule beats the trivial all-polyp mask by a wide margin."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medico.cli import app

ALL_POLYP_DICE = 0.243
"""Mean validation Dice of predicting every pixel as polyp on the medico2020 split's 120 images."""


@pytest.mark.slow
def test_three_epochs_on_real_kvasir_learn_far_beyond_the_trivial_mask(workspace: Path, kvasir_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["train", "unet", "--data", str(kvasir_path), "--input-size", "64", "--epochs", "3", "--lr", "1e-3"]
    )
    assert result.exit_code == 0, result.output
    [run_dir] = (workspace / "runs").iterdir()
    with open(run_dir / "history.csv", newline="") as handle:
        losses = [float(row["train_loss"]) for row in csv.DictReader(handle)]
    assert losses == sorted(losses, reverse=True)  # the loss falls every epoch
    scores = json.loads((run_dir / "summary.json").read_text())["validation"]["scores"]
    assert scores["n_images"] == 120
    assert scores["dice"] > ALL_POLYP_DICE + 0.1  # 0.478 here (bf16, 2 threads)
