"""``medico run --folds K --seeds ...``: seeded folds of the training split, one run per fold and seed, a summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from medico.cli import app
from medico.data import Split
from medico.leaderboard import LeaderboardStore
from medico.runs.sweep import (
    MemberResult,
    SweepError,
    SweepMember,
    kfold_splits,
    parse_seeds,
    summarise_sweep,
    sweep_members,
)

runner = CliRunner()
SMALL_SYNTHETIC_COUNT = 16  # enough for 2 folds of the random split
TINY = ["--option", "init_features=4", "--input-size", "32", "--epochs", "1", "--split", "random"]


def said(result: object) -> str:
    return " ".join(result.output.split())


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 60).flatmap(lambda n: st.tuples(st.just(n), st.integers(2, n))), st.integers(0, 2**32 - 1))
def test_folds_partition_the_training_images_into_near_equal_parts(sizes: tuple[int, int], seed: int) -> None:
    count, folds = sizes
    base = Split("random", tuple(f"img{i:03d}" for i in range(count)), ("held1", "held2"))
    splits = kfold_splits(base, folds, seed=seed)
    assert len(splits) == folds
    held_out = [name for split in splits for name in split.val]
    assert sorted(held_out) == sorted(base.train), "every training image validates exactly once"
    assert max(len(s.val) for s in splits) - min(len(s.val) for s in splits) <= 1
    for split in splits:
        assert set(split.train).isdisjoint(split.val) and set(split.train) | set(split.val) == set(base.train)
        assert list(split.train) == [n for n in base.train if n in set(split.train)], "training order is kept"
        assert "held1" not in split.train + split.val, "the validation split stays held out"


def test_the_same_seed_gives_the_same_folds_and_another_seed_other_folds() -> None:
    base = Split("medico2020", tuple(f"img{i:03d}" for i in range(40)), ("v",))
    assert kfold_splits(base, 5, seed=0) == kfold_splits(base, 5, seed=0)
    assert kfold_splits(base, 5, seed=0) != kfold_splits(base, 5, seed=1)
    assert [s.name for s in kfold_splits(base, 2)] == ["medico2020-fold1of2", "medico2020-fold2of2"]


@pytest.mark.parametrize(("folds", "message"), [(1, "at least 2"), (4, "only 3 training images")])
def test_impossible_fold_counts_are_refused(folds: int, message: str) -> None:
    with pytest.raises(SweepError, match=message):
        kfold_splits(Split("random", ("a", "b", "c"), ("d",)), folds)


def test_seed_lists_are_read_and_bad_ones_refused() -> None:
    assert parse_seeds("1,2, 3") == (1, 2, 3)
    for text, message in (("1,x", "non-negative integers"), ("1,,2", "non-negative"), ("2,2", "more than once")):
        with pytest.raises(SweepError, match=message):
            parse_seeds(text)


def test_a_sweep_runs_every_fold_with_every_seed() -> None:
    assert sweep_members(2, [7, 8]) == [
        SweepMember(1, 2, 7), SweepMember(1, 2, 8), SweepMember(2, 2, 7), SweepMember(2, 2, 8),
    ]
    assert sweep_members(None, [1]) == [SweepMember(None, None, 1)]
    assert SweepMember(2, 5, 3).label == "fold 2/5, seed 3"


def _result(run: str, seed: int, names: list[str], iou: list[float], fold: int | None = None) -> MemberResult:
    frame = pd.DataFrame({"name": names, "iou": iou, "dice": [min(1.0, v + 0.1) for v in iou]})
    return MemberResult(SweepMember(fold, 2 if fold else None, seed), run, seed, "random", frame, {"threshold": 0.5})


def test_seeds_are_averaged_per_image_before_the_interval_over_images() -> None:
    names = ["a", "b", "c", "d"]
    summary = summarise_sweep(
        [_result("1-unet", 1, names, [0.2, 0.4, 0.6, 0.8]), _result("2-unet", 2, names, [0.4, 0.4, 0.8, 0.8])],
        resamples=2_000,
    )
    iou = summary.metrics["iou"]
    assert iou["mean"] == pytest.approx(0.55) and iou["n_runs"] == 2
    assert iou["std"] == pytest.approx(np.std([0.5, 0.6], ddof=1))
    assert iou["n_images"] == 4 and iou["image_mean"] == pytest.approx(0.55)
    assert summary.per_image.set_index("name").loc["a", "iou"] == pytest.approx(0.3)
    assert list(summary.per_image["runs"]) == [2, 2, 2, 2]
    assert iou["ci_low"] < 0.55 < iou["ci_high"]


def test_folds_pool_their_images_so_each_training_image_counts_once() -> None:
    summary = summarise_sweep(
        [
            _result("1-unet", 0, ["a", "b"], [0.2, 0.4], fold=1),
            _result("2-unet", 0, ["c", "d", "e"], [0.6, 0.8, 1.0], fold=2),
        ],
        resamples=2_000,
    )
    iou = summary.metrics["iou"]
    assert iou["n_images"] == 5 and iou["image_mean"] == pytest.approx(0.6)
    assert iou["mean"] == pytest.approx((0.3 + 0.8) / 2), "mean over runs: each fold's mean counts once"
    assert [row["fold"] for row in summary.runs] == [1, 2]


def test_run_with_seeds_records_each_run_ranks_them_and_summarises_them(small_data: Path) -> None:
    result = runner.invoke(app, ["run", "unet", *TINY, "--seeds", "3,4", "--team", "alice"])
    assert result.exit_code == 0, result.output
    assert "sweep run 2/2: seed 4" in said(result) and "95% CI" in said(result)

    runs = [small_data / "runs" / name for name in ("1-unet", "2-unet")]
    seeds = [json.loads((run / "config.json").read_text())["seed"] for run in runs]
    assert seeds == [3, 4]
    entries = LeaderboardStore().entries(split="val")
    assert [e.run for e in entries] == [1, 2]
    for run, entry in zip(runs, entries):
        intervals = json.loads((run / "summary.json").read_text())["validation"]["intervals"]
        assert entry.iou_ci_low == intervals["iou"]["ci_low"] and entry.dice_ci_high == intervals["dice"]["ci_high"]
        assert intervals["iou"]["ci_low"] <= entry.iou <= intervals["iou"]["ci_high"]

    sweep = json.loads((small_data / "runs" / "sweeps" / "1-unet" / "summary.json").read_text())
    assert sweep["seeds"] == [3, 4] and sweep["folds"] is None
    assert [r["run"] for r in sweep["runs"]] == ["1-unet", "2-unet"]
    iou = sweep["metrics"]["iou"]
    assert iou["mean"] == pytest.approx(np.mean([e.iou for e in entries]))
    assert iou["ci_low"] <= iou["image_mean"] <= iou["ci_high"]
    assert iou["n_images"] == entries[0].n_images, "both seeds are scored on the same images"
    assert (small_data / "runs" / "sweeps" / "1-unet" / "per_image.csv").is_file()

    compared = runner.invoke(app, ["compare", "1", "2"])
    assert compared.exit_code == 0, compared.output
    assert "A - B" in said(compared) and "Wilcoxon" in said(compared)


def test_run_with_folds_validates_each_fold_on_held_out_training_images_off_the_leaderboard(small_data: Path) -> None:
    result = runner.invoke(app, ["run", "unet", *TINY, "--folds", "2"])
    assert result.exit_code == 0, result.output
    assert "not on the leaderboard" in said(result)
    datasets = [json.loads((small_data / "runs" / f"{n}-unet" / "dataset.json").read_text()) for n in (1, 2)]
    vals = [set(d["split"]["val"]) for d in datasets]
    assert vals[0].isdisjoint(vals[1])
    assert vals[0] | vals[1] == set(datasets[0]["split"]["train"]) | vals[0]
    assert [d["split"]["name"] for d in datasets] == ["random-fold1of2", "random-fold2of2"]
    assert LeaderboardStore().entries() == []
    sweep = json.loads((small_data / "runs" / "sweeps" / "1-unet" / "summary.json").read_text())
    assert sweep["folds"] == 2 and sweep["n_images"] == len(vals[0] | vals[1])

    refused = runner.invoke(app, ["compare", "1", "2"])
    assert refused.exit_code == 2 and "different validation images" in said(refused)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--seeds", "1,x"], "--seeds"),
        (["--seeds", "1", "--seed", "2"], "--seed and --seeds"),
        (["--folds", "1"], "at least 2"),
        (["--folds", "2", "--resume", "latest"], "--resume"),
    ],
)
def test_impossible_sweeps_are_refused_before_anything_trains(small_data: Path, extra: list, message: str) -> None:
    result = runner.invoke(app, ["run", "unet", *TINY, *extra])
    assert result.exit_code == 2, result.output
    assert message in said(result)
    assert not any((small_data / "runs").glob("*-unet"))
