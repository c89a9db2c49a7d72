"""Experiments over folds and seeds: K-fold splits of the training split, one run per fold and seed, and their summary.

``medico run MODEL --folds K --seeds 1,2,3`` trains one ordinary run (its own folder, record and summary) per fold
and seed. Folds partition the *training* split (seeded by :data:`FOLD_SEED`, never by ``--seed``, so every seed of a
fold sees the same images); the split's validation images stay held out. The sweep summary gives, for mIoU and Dice,
the mean and sample standard deviation of the runs' scores and a 95% bootstrap interval over images, each image's
score first averaged over the runs that scored it (over seeds; across folds every training image is scored once).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medico.data import Split
from medico.engine.result import EvaluationResult
from medico.errors import MedicoError
from medico.files import write_atomic
from medico.runs.config import ConfigError, RunOptions, check_setting
from medico.runs.experiment import RunOutcome, RunPlan, plan_run
from medico.runs.folder import create_numbered_folder
from medico.runs.members import sweeps_root
from medico.runs.record import write_json
from medico.stats.per_image import CONFIDENCE, RESAMPLES, describe, std

__all__ = [
    "FOLD_SEED",
    "SWEEP_HEADERS",
    "SWEEP_METRICS",
    "MemberResult",
    "SweepError",
    "SweepMember",
    "SweepSummary",
    "kfold_splits",
    "parse_seeds",
    "run_sweep",
    "plan_member",
    "summarise_sweep",
    "sweep_members",
    "write_sweep",
]

FOLD_SEED = 0
"""Seeds the fold partition; fixed so that runs with different ``--seed`` are scored on the same images."""
MAX_FOLDS = 1000
"""The most folds a sweep plans: more than leave-one-out over Kvasir-SEG's 880 training images."""
SWEEP_METRICS = ("iou", "dice")
SWEEP_HEADERS = {"iou": "mIoU", "dice": "Dice"}
"""How the sweep's metrics are named where people read them."""


class SweepError(MedicoError):
    """Folds or seeds that cannot make a sweep: fewer than two folds, more folds than images, a bad seed list."""


def kfold_splits(split: Split, folds: int, *, seed: int = FOLD_SEED) -> list[Split]:
    """``folds`` splits of ``split.train``: fold i validates on the i-th of ``folds`` seeded, near-equal parts and
    trains on the rest (training names keep their order). ``split.val`` is in none of them.

    Raises:
        SweepError: fewer than two folds, or more folds than training images.
    """
    names = split.train
    if folds < 2:
        raise SweepError(f"--folds: expected at least 2 folds, got {folds}")
    if folds > len(names):
        raise SweepError(f"--folds {folds}: split {split.name} has only {len(names)} training images to share out")
    order = np.random.default_rng(seed).permutation(len(names))
    result = []
    for index, part in enumerate(np.array_split(order, folds), start=1):
        held = {names[i] for i in part.tolist()}
        result.append(
            Split(
                name=f"{split.name}-fold{index}of{folds}",
                train=tuple(n for n in names if n not in held),
                val=tuple(sorted(held)),
            )
        )
    return result


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"1,2,3"`` as ``(1, 2, 3)``; each a seed as ``--seed`` takes it (:func:`medico.runs.config.check_setting`), none
    repeated."""
    seeds = []
    for item in text.split(","):
        item = item.strip()
        if not item.isdigit():
            raise SweepError(f"--seeds: expected non-negative integers separated by commas (1,2,3), got {text!r}")
        seeds.append(check_setting("seed", int(item), name="--seeds"))
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise SweepError(f"--seeds {text}: each seed once, found {', '.join(map(str, repeated))} more than once")
    return tuple(seeds)


@dataclass(frozen=True)
class SweepMember:
    """One run of a sweep: fold ``fold`` of ``folds`` (None: the split as it is) with seed ``seed`` (None: the
    config's)."""

    fold: int | None = None
    folds: int | None = None
    seed: int | None = None

    @property
    def label(self) -> str:
        """``fold 2/5, seed 3`` (the parts that apply)."""
        parts = ([f"fold {self.fold}/{self.folds}"] if self.fold else []) + (
            [f"seed {self.seed}"] if self.seed is not None else []
        )
        return ", ".join(parts) or "run"


def sweep_members(folds: int | None, seeds: Sequence[int] | None) -> list[SweepMember]:
    """Every fold with every seed, folds outermost."""
    if folds is not None and not 2 <= folds <= MAX_FOLDS:
        raise SweepError(f"--folds: expected at least 2 and at most {MAX_FOLDS} folds, got {folds}")
    fold_numbers: list[int | None] = list(range(1, folds + 1)) if folds else [None]
    seed_values: list[int | None] = list(seeds) if seeds else [None]
    return [SweepMember(fold, folds, seed) for fold in fold_numbers for seed in seed_values]


def plan_member(
    model: str,
    member: SweepMember,
    given: RunOptions,
) -> RunPlan:
    """The plan of one sweep run: the run's config with the member's seed, trained and scored on its fold."""
    if member.seed is not None and given.seed is not None:
        raise ConfigError("--seed and --seeds: expected one of them, got both")
    if member.seed is not None:
        given = dataclasses.replace(given, seed=member.seed)
    plan = plan_run(model, given)
    if member.fold is None:
        return plan
    return dataclasses.replace(plan, split=kfold_splits(plan.split, int(member.folds or 0))[member.fold - 1])


@dataclass(frozen=True)
class MemberResult:
    """What a sweep keeps of one finished run: which member, its folder's name, seed, split and per-image scores."""

    member: SweepMember
    run: str
    seed: int
    split: str
    per_image: pd.DataFrame
    policy: dict[str, Any]

    @classmethod
    def from_evaluation(cls, member: SweepMember, plan: RunPlan, evaluation: EvaluationResult) -> MemberResult:
        """The result of ``plan``'s run, scored as ``evaluation``."""
        frame = evaluation.per_image[["name", *SWEEP_METRICS]].copy()
        return cls(member, plan.run.name, plan.config.seed, plan.split.name, frame, evaluation.policy)


@dataclass(frozen=True)
class SweepSummary:
    """Per metric: mean and sample std over runs, and the bootstrap interval over images of the per-image scores
    averaged over runs (``image_mean`` is their mean); ``per_image`` holds those averages."""

    runs: list[dict[str, Any]]
    metrics: dict[str, dict[str, float]]
    per_image: pd.DataFrame
    confidence: float
    resamples: int
    policy: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (without the per-image table)."""
        return {
            "runs": self.runs,
            "metrics": self.metrics,
            "n_images": len(self.per_image),
            "bootstrap": {"confidence": self.confidence, "resamples": self.resamples, "over": "images"},
            "metric_policy": self.policy,
        }


def summarise_sweep(
    results: Sequence[MemberResult], *, confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = 0
) -> SweepSummary:
    """Mean, std over runs and bootstrap interval over images for mIoU and Dice (see the module docstring)."""
    if not results:
        raise SweepError("sweep summary: no finished runs to summarise")
    pooled = pd.concat([r.per_image for r in results], ignore_index=True)
    per_image = pooled.groupby("name", sort=True)[list(SWEEP_METRICS)].mean()
    per_image["runs"] = pooled.groupby("name", sort=True).size()
    runs = []
    for r in results:
        row: dict[str, Any] = {"run": r.run, "fold": r.member.fold, "seed": r.seed, "split": r.split}
        row["n_images"] = len(r.per_image)
        row |= {metric: float(r.per_image[metric].mean()) for metric in SWEEP_METRICS}
        runs.append(row)
    metrics = {}
    for metric in SWEEP_METRICS:
        run_scores = [row[metric] for row in runs]
        images = describe(per_image[metric].to_numpy(), confidence=confidence, resamples=resamples, seed=seed)
        metrics[metric] = {
            "mean": float(np.mean(run_scores)),
            "std": std(run_scores, ddof=1),
            "n_runs": len(runs),
            "image_mean": images.mean,
            "ci_low": images.ci_low,
            "ci_high": images.ci_high,
            "n_images": images.n,
        }
    return SweepSummary(runs, metrics, per_image.reset_index(), confidence, resamples, results[0].policy)


def write_sweep(
    summary: SweepSummary, model: str, *, folds: int | None, seeds: Sequence[int] | None, root: Path | None = None
) -> Path:
    """A new sweep folder ``runs/sweeps/<n>-<model>/`` holding ``summary.json`` and ``per_image.csv``."""
    folder = create_numbered_folder(sweeps_root(root), model)
    record = {
        "sweep": folder.name,
        "model": model,
        "folds": folds,
        "fold_seed": FOLD_SEED if folds else None,
        "seeds": list(seeds) if seeds else None,
        **summary.as_dict(),
    }
    write_json(folder / "summary.json", record)
    write_atomic(folder / "per_image.csv", summary.per_image.to_csv(index=False), replace=True)
    return folder


def run_sweep(
    model: str,
    given: RunOptions,
    *,
    folds: int | None,
    seeds: Sequence[int] | None,
    train: Callable[[RunPlan, bool], RunOutcome],
    starting: Callable[[int, int, SweepMember], None] | None = None,
) -> tuple[SweepSummary, Path]:
    """One run per fold and seed, then their summary, written to a new sweep folder; returns both.

    ``train(plan, ranked)`` trains, scores and records one planned run (``ranked``: whether it may reach the
    leaderboard: fold runs never do, since they are scored on training images, not the validation split);
    ``starting(index, count, member)`` is told before each run.
    """
    members = sweep_members(folds, seeds)
    results = []
    for index, member in enumerate(members, start=1):
        if starting is not None:
            starting(index, len(members), member)
        plan = plan_member(model, member, given)
        outcome = train(plan, member.fold is None)
        results.append(MemberResult.from_evaluation(member, plan, outcome.evaluation))
    summary = summarise_sweep(results)
    return summary, write_sweep(summary, model, folds=folds, seeds=seeds)
