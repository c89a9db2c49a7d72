"""Two runs compared image by image: their ``per_image.csv`` scores on the same validation images, paired.

A paired comparison only means something when both runs scored exactly the same images of the same data, so
runs scored on different image sets (another split, another fold) or on different data (fingerprints in their
``dataset.json`` differ) are refused with what differs.
"""

from __future__ import annotations

from dataclasses import dataclass

from medico.errors import MedicoError, some
from medico.metrics import METRIC_NAMES
from medico.runs.dataset import DataRecord
from medico.runs.folder import read_per_image
from medico.stats.per_image import CONFIDENCE, RESAMPLES, PairedComparison, compare_paired

__all__ = ["ComparisonError", "RunComparison", "compare_runs"]


class ComparisonError(MedicoError):
    """Two runs that cannot be compared image by image: unscored, different images or data, an unknown metric."""


@dataclass(frozen=True)
class RunComparison:
    """Run A against run B on ``metric`` over the same images (``result``: differences are A - B)."""

    run_a: str
    run_b: str
    metric: str
    result: PairedComparison


def compare_runs(
    run_a: str,
    run_b: str,
    *,
    metric: str = "iou",
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> RunComparison:
    """Compare two runs on ``metric`` over their validation images (paired bootstrap, Wilcoxon, wins and ties).

    Raises:
        ComparisonError: unknown metric, a run not scored, different image sets or different data.
    """
    if metric not in METRIC_NAMES:
        raise ComparisonError(f"--metric: expected one of {', '.join(METRIC_NAMES)}, got {metric!r}")
    (folder_a, scores_a), (folder_b, scores_b) = read_per_image(run_a, [metric]), read_per_image(run_b, [metric])
    scores_a, scores_b = scores_a.set_index("name"), scores_b.set_index("name")
    name_a, name_b = folder_a.name, folder_b.name
    only_a = sorted(set(scores_a.index) - set(scores_b.index))
    only_b = sorted(set(scores_b.index) - set(scores_a.index))
    if only_a or only_b:
        parts = [
            f"{len(names)} only in {run}: {some(names)}"
            for run, names in ((name_a, only_a), (name_b, only_b))
            if names
        ]
        raise ComparisonError(
            f"runs {name_a} and {name_b} were scored on different validation images ({len(scores_a)} and "
            f"{len(scores_b)}; {'; '.join(parts)}); a paired comparison needs the same images (same split, no folds)"
        )
    record_a, record_b = DataRecord.read(folder_a), DataRecord.read(folder_b)
    if record_a is not None and record_b is not None and record_a.fingerprint != record_b.fingerprint:
        raise ComparisonError(
            f"runs {name_a} and {name_b} were scored on different data (dataset fingerprints "
            f"{record_a.fingerprint[:12]}... and {record_b.fingerprint[:12]}..., see {folder_a.dataset} and "
            f"{folder_b.dataset})"
        )
    b_aligned = scores_b.loc[scores_a.index, metric]
    result = compare_paired(
        scores_a[metric].to_numpy(), b_aligned.to_numpy(), confidence=confidence, resamples=resamples, seed=seed
    )
    return RunComparison(name_a, name_b, metric, result)
