"""``medico compare RUN_A RUN_B``: paired comparison of two scored runs on the same validation images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from medico.cli import app
from medico.data import Split
from medico.engine.result import EvaluationResult
from medico.errors import MedicoError
from medico.runs.dataset import DataRecord
from medico.stats.paired_runs import ComparisonError, compare_runs

runner = CliRunner()


def said(result: object) -> str:
    return " ".join(result.output.split())


def scored_run(workspace: Path, run: str, names: list[str], tp: list[int], fingerprint: str = "f" * 64) -> Path:
    """A run folder as ``medico run`` leaves it for scoring: per_image.csv, metrics.json and dataset.json."""
    folder = workspace / "runs" / run
    folder.mkdir(parents=True)
    counts = torch.tensor([[t, 100 - t, 100 - t, 1000] for t in tp])
    EvaluationResult.from_counts(names, [(40, 40)] * len(names), counts).write(folder)
    split = Split("files", tuple(f"train{i}" for i in range(10)), tuple(names))
    record = DataRecord("a test set", False, fingerprint, len(names) + 10, split)
    (folder / "dataset.json").write_text(json.dumps(record.as_dict()))
    return folder


NAMES = [f"img{i:02d}" for i in range(30)]


@pytest.fixture
def two_runs(workspace: Path) -> Path:
    rng = np.random.default_rng(0)
    weaker = rng.integers(20, 80, len(NAMES))
    scored_run(workspace, "1-unet", NAMES, list(weaker + 15))
    scored_run(workspace, "2-attunet", list(reversed(NAMES)), list(reversed(weaker)))  # another row order
    return workspace


def test_a_run_better_on_almost_every_image_wins_clearly(two_runs: Path) -> None:
    comparison = compare_runs("1", "2-attunet")
    r = comparison.result
    assert (comparison.run_a, comparison.run_b, comparison.metric, r.n) == ("1-unet", "2-attunet", "iou", 30)
    assert r.wins == 30 and r.share_a_better == 1.0 and r.ci_low > 0 and r.p_value < 1e-5
    assert r.mean_difference == pytest.approx(r.mean_a - r.mean_b)


def test_images_are_paired_by_name_whatever_the_row_order(two_runs: Path) -> None:
    ab, ba = compare_runs("1", "2", metric="dice"), compare_runs("2", "1", metric="dice")
    assert ba.result.mean_difference == pytest.approx(-ab.result.mean_difference)
    assert (ba.result.wins, ba.result.losses) == (ab.result.losses, ab.result.wins)


def test_a_run_against_itself_ties_everywhere(two_runs: Path) -> None:
    r = compare_runs("1", "1").result
    assert (r.ties, r.mean_difference, r.ci_low, r.ci_high, r.p_value) == (30, 0.0, 0.0, 0.0, 1.0)


def test_compare_prints_the_paired_table_and_a_verdict(two_runs: Path) -> None:
    result = runner.invoke(app, ["compare", "1", "2", "--metric", "dice"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    text = said(result)
    assert "1-unet (A) vs 2-attunet (B): Dice on the same 30 images" in text
    for label in ("mean difference A - B", "95% CI (paired bootstrap)", "Wilcoxon W+ / W-", "ties"):
        assert label in text
    assert "A better │ 30 (100.0%)" in text and "+0.1500" in text
    assert "1-unet is better" in text


def test_runs_scored_on_different_images_are_refused_with_what_differs(workspace: Path) -> None:
    scored_run(workspace, "1-unet", NAMES, [50] * 30)
    scored_run(workspace, "2-unet", NAMES[:28] + ["other1", "other2"], [50] * 30)
    result = runner.invoke(app, ["compare", "1", "2"])
    assert result.exit_code == 2
    assert "different validation images" in said(result)
    assert "2 only in 1-unet: img28, img29" in said(result) and "2 only in 2-unet: other1, other2" in said(result)


def test_runs_scored_on_different_data_are_refused(workspace: Path) -> None:
    scored_run(workspace, "1-unet", NAMES, [50] * 30)
    scored_run(workspace, "2-unet", NAMES, [60] * 30, fingerprint="0" * 64)
    with pytest.raises(ComparisonError, match="different data"):
        compare_runs("1", "2")


def test_an_unscored_run_and_an_unknown_metric_are_refused(workspace: Path) -> None:
    scored_run(workspace, "1-unet", NAMES, [50] * 30)
    (workspace / "runs" / "2-unet").mkdir()
    with pytest.raises(MedicoError, match="per_image.csv is missing"):
        compare_runs("1", "2")
    with pytest.raises(ComparisonError, match="--metric: expected one of dice, iou"):
        compare_runs("1", "1", metric="miou")
    missing = runner.invoke(app, ["compare", "1", "7"])
    assert missing.exit_code == 2 and "not found" in said(missing)


def sweep_of(workspace: Path, sweep: str, runs: list[str]) -> None:
    """A sweep folder as ``medico run --seeds`` leaves it: a summary listing its runs by id."""
    folder = workspace / "runs" / "sweeps" / sweep
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"runs": [{"run": run} for run in runs]}))


@pytest.fixture
def two_sweeps(workspace: Path) -> Path:
    """Sweep 1 (runs 1, 2) beats sweep 2 (runs 3, 4) by 15 true positives an image on average over its seeds."""
    base = np.random.default_rng(0).integers(20, 70, len(NAMES))
    for run, shift in (("1-attunet", 10), ("2-attunet", 20), ("3-attunet", 0), ("4-attunet", 0)):
        scored_run(workspace, run, NAMES, list(base + shift))
    sweep_of(workspace, "1-attunet", ["1-attunet", "2-attunet"])
    sweep_of(workspace, "2-attunet", ["3-attunet", "4-attunet"])
    return workspace


def test_sweeps_are_compared_on_each_images_mean_over_their_runs(two_sweeps: Path) -> None:
    comparison = compare_runs("1", "2", sweeps=True, metric="dice")
    runs = {run: compare_runs(run, "3", metric="dice").result.mean_a for run in ("1", "2")}
    r = comparison.result
    assert (comparison.run_a, comparison.run_b, r.n) == ("sweep 1-attunet (2 runs)", "sweep 2-attunet (2 runs)", 30)
    assert r.mean_a == pytest.approx((runs["1"] + runs["2"]) / 2)  # the mean of the runs' means, image by image
    assert r.wins == 30 and r.ci_low > 0


def test_compare_sweeps_on_the_command_line_names_both_and_a_verdict(two_sweeps: Path) -> None:
    result = runner.invoke(app, ["compare", "latest", "1", "--sweeps"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "sweep 2-attunet (2 runs) (A) vs sweep 1-attunet (2 runs) (B)" in said(result)
    assert "sweep 1-attunet (2 runs) is better" in said(result)


def test_a_sweep_whose_runs_scored_other_images_is_refused(two_sweeps: Path) -> None:
    scored_run(two_sweeps, "5-attunet", NAMES[:29] + ["other"], [50] * 30)
    sweep_of(two_sweeps, "3-attunet", ["3-attunet", "5-attunet"])
    result = runner.invoke(app, ["compare", "3", "1", "--sweeps"])
    assert result.exit_code == 2
    assert "sweep 3-attunet: runs 3-attunet and 5-attunet were scored on different validation images" in said(result)


def test_a_sweep_with_a_run_on_other_data_is_refused(two_sweeps: Path) -> None:
    scored_run(two_sweeps, "5-attunet", NAMES, [50] * 30, fingerprint="0" * 64)
    sweep_of(two_sweeps, "3-attunet", ["3-attunet", "5-attunet"])
    with pytest.raises(ComparisonError, match="different data.*5-attunet: 000000000000"):
        compare_runs("3", "1", sweeps=True)


def test_compare_sweeps_with_a_run_id_says_there_is_no_such_sweep(two_sweeps: Path) -> None:
    result = runner.invoke(app, ["compare", "1", "9", "--sweeps"])
    assert result.exit_code == 2
    assert "sweep '9': no such sweep" in said(result) and "--sweep " not in said(result)
