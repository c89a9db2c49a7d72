"""Two runs, or two sweeps, compared image by image on the same validation images, paired.

A run's scores are its ``per_image.csv``; a sweep's are, per image, the mean over its runs (its seeds), so that
two recipes trained with several seeds are compared on what each would give on average, with the interval over
images. A paired comparison only means something when every run scored exactly the same images of the same data,
so runs scored on different image sets (another split, another fold) or on different data (fingerprints in their
``dataset.json`` differ) are refused with what differs.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from medico.errors import MedicoError, some
from medico.metrics import METRIC_NAMES
from medico.runs.dataset import DataRecord
from medico.runs.folder import read_per_image
from medico.runs.members import find_sweep, sweep_runs
from medico.stats.per_image import CONFIDENCE, RESAMPLES, PairedComparison, compare_paired

__all__ = ["ComparisonError", "RunComparison", "compare_runs"]


class ComparisonError(MedicoError):
    """Two runs that cannot be compared image by image: unscored, different images or data, an unknown metric."""


@dataclass(frozen=True)
class RunComparison:
    """Run (or sweep) A against B on ``metric`` over the same images (``result``: differences are A - B)."""

    run_a: str
    run_b: str
    metric: str
    result: PairedComparison


@dataclass(frozen=True)
class _Scores:
    """One side of a comparison: its name, its per-image scores (indexed by image name) and the data fingerprint of
    each of its runs that recorded one."""

    name: str
    scores: pd.Series
    fingerprints: dict[str, str]


def _run_scores(run: str, metric: str) -> _Scores:
    folder, frame = read_per_image(run, [metric])
    record = DataRecord.read(folder)
    fingerprints = {} if record is None else {folder.name: record.fingerprint}
    return _Scores(folder.name, frame.set_index("name")[metric], fingerprints)


def _sweep_scores(sweep: str, metric: str) -> _Scores:
    """Each image's mean over the sweep's runs, once every run is found to have scored the same images."""
    name = find_sweep(sweep).name
    runs = [_run_scores(run, metric) for run in sweep_runs(sweep)]
    for run in runs[1:]:
        _check_same_images(runs[0], run, f"sweep {name}: ")
    scores = pd.concat([run.scores.rename(run.name) for run in runs], axis=1).mean(axis=1)
    fingerprints = {key: value for run in runs for key, value in run.fingerprints.items()}
    return _Scores(f"sweep {name} ({len(runs)} runs)", scores, fingerprints)


def _check_same_images(a: _Scores, b: _Scores, context: str = "") -> None:
    names_a, names_b = set(a.scores.index), set(b.scores.index)
    only_a, only_b = sorted(names_a - names_b), sorted(names_b - names_a)
    if only_a or only_b:
        parts = [f"{len(names)} only in {s.name}: {some(names)}" for s, names in ((a, only_a), (b, only_b)) if names]
        raise ComparisonError(
            f"{context}runs {a.name} and {b.name} were scored on different validation images ({len(a.scores)} and "
            f"{len(b.scores)}; {'; '.join(parts)}); a paired comparison needs the same images (same split, no folds)"
        )


def _check_same_data(a: _Scores, b: _Scores) -> None:
    fingerprints = a.fingerprints | b.fingerprints
    if len(set(fingerprints.values())) > 1:
        shown = ", ".join(f"{run}: {value[:12]}..." for run, value in fingerprints.items())
        raise ComparisonError(
            f"{a.name} and {b.name} were scored on different data (dataset fingerprints {shown}; see each run's "
            "dataset.json)"
        )


def compare_runs(
    run_a: str,
    run_b: str,
    *,
    metric: str = "iou",
    sweeps: bool = False,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> RunComparison:
    """Compare two runs (two sweeps, with ``sweeps``) on ``metric`` over their validation images (paired bootstrap,
    Wilcoxon, wins and ties).

    Raises:
        ComparisonError: unknown metric, a run not scored, different image sets or different data.
        MembersError: a sweep that cannot be found or read.
    """
    if metric not in METRIC_NAMES:
        raise ComparisonError(f"--metric: expected one of {', '.join(METRIC_NAMES)}, got {metric!r}")
    side = _sweep_scores if sweeps else _run_scores
    a, b = side(run_a, metric), side(run_b, metric)
    _check_same_images(a, b)
    _check_same_data(a, b)
    result = compare_paired(
        a.scores.to_numpy(), b.scores.loc[a.scores.index].to_numpy(), confidence=confidence, resamples=resamples,
        seed=seed,
    )
    return RunComparison(a.name, b.name, metric, result)
