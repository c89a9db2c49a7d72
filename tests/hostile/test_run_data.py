"""A run's data, hostile cases: `medico evaluate` scores only what the run held out, a changed dataset is never
passed off as the run's own, an evaluation never replaces the run's record, and a failed run is never `latest`.

Runs are real (`medico train`, one epoch of a 4-feature U-Net at 32 px on about 20 images).
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import Result

from medico.data.synthetic import SyntheticDataset, write_synthetic_kvasir
from medico.engine.training import Trainer
from tests.test_evaluation_cli import invoke

TINY = ["--option", "init_features=4", "--input-size", "32", "--epochs", "1", "--device", "cpu"]
PROPERTY = settings(
    max_examples=3, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@functools.cache
def _synthetic(seed: int = 0) -> SyntheticDataset:
    return SyntheticDataset(seed=seed, count=20)


@pytest.fixture
def small_synthetic(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace where the built-in synthetic set has 20 frames (of whatever seed it is asked for)."""
    monkeypatch.setattr("medico.data.resolve.SyntheticDataset", _synthetic)
    return workspace


def said(result: Result) -> str:
    return " ".join(result.output.split())


def train(*args: object) -> Path:
    """Train a tiny run and return its folder (the newest one)."""
    result = invoke("train", "unet", *TINY, *args)
    assert result.exit_code == 0, result.output
    runs = [p for p in Path(os.environ["MEDICO_RUNS"]).iterdir() if p.name[0].isdigit()]
    return max(runs, key=lambda p: int(p.name.split("-")[0]))


def recorded_val(run: Path) -> list[str]:
    return json.loads((run / "dataset.json").read_text())["split"]["val"]


def scored_names(run: Path, out: Path, *args: object) -> list[str]:
    result = invoke("evaluate", run.name, "--device", "cpu", "--out", out, *args)
    assert result.exit_code == 0, result.output
    return list(pd.read_csv(out / "per_image.csv", dtype={"name": str})["name"])


@PROPERTY
@given(seed=st.integers(0, 2**16), split=st.sampled_from(["auto", "random"]))
def test_evaluate_scores_exactly_the_held_out_images_a_synthetic_run_recorded(
    small_synthetic: Path, seed: int, split: str
) -> None:
    run = train("--seed", seed, "--split", split)
    assert sorted(scored_names(run, small_synthetic / f"eval-{run.name}")) == sorted(recorded_val(run))


@PROPERTY
@given(seed=st.integers(0, 2**16), split=st.sampled_from(["auto", "random"]))
def test_evaluate_scores_exactly_the_held_out_images_a_kvasir_run_recorded(
    workspace: Path, seed: int, split: str
) -> None:
    data = workspace / "kvasir"
    if not data.is_dir():
        write_synthetic_kvasir(data, count=12)
    run = train("--data", data, "--seed", seed, "--split", split)
    assert sorted(scored_names(run, workspace / f"eval-{run.name}")) == sorted(recorded_val(run))


def test_a_checkpoint_copied_out_of_its_run_still_scores_only_the_images_its_run_held_out(workspace: Path) -> None:
    data = write_synthetic_kvasir(workspace / "kvasir", count=12)
    run = train("--data", data, "--seed", 7, "--split", "random")
    copy = workspace / "elsewhere" / "model.pt"
    copy.parent.mkdir()
    copy.write_bytes((run / "checkpoints" / "best.pt").read_bytes())
    result = invoke("evaluate", copy, "--device", "cpu", "--out", workspace / "scores")
    assert result.exit_code == 0, result.output
    assert sorted(pd.read_csv(workspace / "scores" / "per_image.csv")["name"]) == sorted(recorded_val(run))
    assert invoke("evaluate", copy, "--device", "cpu").exit_code == 0
    assert (workspace / "evaluations" / "1-model" / "per_image.csv").is_file()  # a folder of its own by default


def test_a_changed_dataset_is_refused_and_scored_only_when_given_then_labelled_other_data(workspace: Path) -> None:
    data = write_synthetic_kvasir(workspace / "kvasir", count=12)
    run = train("--data", data, "--seed", 5, "--split", "random")
    fingerprint = json.loads((run / "dataset.json").read_text())["fingerprint"]
    Image.fromarray(np.full((160, 192), 255, np.uint8)).save(data / "masks" / "synthetic-0003.jpg")  # redrawn

    refused = invoke("evaluate", run.name, "--device", "cpu", "--out", workspace / "refused")
    assert refused.exit_code == 2, refused.output
    assert run.name in said(refused) and fingerprint[:12] in said(refused) and "changed" in said(refused)
    assert not (workspace / "refused" / "per_image.csv").exists()

    for option in (["--data", data], ["--split", "random"]):
        out = workspace / f"other-{option[0][2:]}"
        scored = invoke("evaluate", run.name, "--device", "cpu", "--out", out, *option)
        assert scored.exit_code == 0, scored.output
        assert "other data" in said(scored)
        saved = json.loads((out / "metrics.json").read_text())["data"]
        assert saved["other_data"] is True and "other data" in saved["note"] and saved["fingerprint"] != fingerprint


def test_evaluating_a_checkpoint_inside_its_run_folder_leaves_the_runs_scores_byte_identical(
    small_synthetic: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = train()
    record = {name: (run / name).read_bytes() for name in ("per_image.csv", "metrics.json")}
    monkeypatch.chdir(run)

    other_threshold = invoke("evaluate", Path("checkpoints") / "best.pt", "--device", "cpu", "--threshold", 0.7)
    assert other_threshold.exit_code == 0, other_threshold.output
    assert {name: (run / name).read_bytes() for name in record} == record

    into_the_run = invoke("evaluate", Path("checkpoints") / "best.pt", "--device", "cpu", "--out", ".")
    assert into_the_run.exit_code == 2 and "--force" in said(into_the_run)
    assert {name: (run / name).read_bytes() for name in record} == record


def _interrupt(*args: object) -> None:
    raise KeyboardInterrupt


@pytest.mark.parametrize("failure", ["cache error", "interrupted"])
def test_a_run_that_fails_before_its_first_checkpoint_is_never_latest(
    small_synthetic: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    good = train()
    with monkeypatch.context() as patch:
        if failure == "cache error":  # the decoded cache cannot be written once training reads the data
            (small_synthetic / "a-file").write_text("")
            patch.setenv("MEDICO_CACHE", str(small_synthetic / "a-file" / "cache"))
        else:
            patch.setattr(Trainer, "_train_epoch", _interrupt)
        failed = invoke("train", "unet", *TINY)
    assert failed.exit_code != 0

    scored = invoke("evaluate", "latest", "--device", "cpu", "--out", small_synthetic / "latest")
    assert scored.exit_code == 0, scored.output
    assert f"{good.name}/checkpoints/best.pt" in said(scored)
    submitted = invoke("submit", "--team", "T", "--device", "cpu")
    assert submitted.exit_code == 0, submitted.output
    manifest = json.loads((small_synthetic / "submissions" / "T" / "T_task1_run1.json").read_text())
    assert Path(manifest["checkpoint"]).resolve() == (good / "checkpoints" / "best.pt").resolve()


def test_evaluate_split_all_scores_every_image_of_another_labelled_set_and_says_so(workspace: Path) -> None:
    data = write_synthetic_kvasir(workspace / "kvasir", count=12)
    run = train("--data", data, "--split", "random")
    other = write_synthetic_kvasir(workspace / "other-centre", count=7, seed=9)
    out = workspace / "all"
    scored = invoke("evaluate", run.name, "--device", "cpu", "--out", out, "--data", other, "--split", "all")
    assert scored.exit_code == 0, scored.output
    frame = pd.read_csv(out / "per_image.csv")
    assert len(frame) == 7 and "other data" in said(scored)
    assert json.loads((out / "metrics.json").read_text())["data"]["split"] == "all"


def test_show_split_all_draws_the_best_and_worst_of_another_labelled_set_scored_now(workspace: Path) -> None:
    data = write_synthetic_kvasir(workspace / "kvasir", count=12)
    run = train("--data", data, "--split", "random")
    other = write_synthetic_kvasir(workspace / "other-centre", count=7, seed=9)
    out = workspace / "drawn"
    shown = invoke("show", run.name, "--device", "cpu", "--data", other, "--split", "all", "--count", "2",
                   "--out", out)
    assert shown.exit_code == 0, shown.output
    drawn = {p.stem.split("-", 2)[2] for p in out.glob("*-*.png")}  # best-01-NAME.png
    assert len(drawn) == 4 and drawn <= {p.stem for p in (other / "images").iterdir()}
    assert "other data" in said(shown)
    assert not (run / "overlays").exists()  # the run's own overlays are untouched: these went to --out
