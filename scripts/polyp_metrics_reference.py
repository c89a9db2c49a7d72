"""The live check behind tests/test_polyp_metrics.py's stored REFERENCE values: medico's S-measure, E-measures,
weighted F-measure, MAE and HD95 against pysodmetrics and medpy on the seeded maps and 20 more.

Those libraries pin numpy and OpenCV below what medico runs on, so they are not dependencies: install them
apart (``pip install --no-deps --target /tmp/refsite pysodmetrics medpy``) and run
``PYTHONPATH=/tmp/refsite:. python scripts/polyp_metrics_reference.py``. Exits 1 on the first disagreement.
"""

from __future__ import annotations

import sys

import numpy as np
import py_sod_metrics as psm
from medpy.metric import binary as medpy_binary

from medico.polyp_metrics import hd95, saliency_scores
from tests.test_polyp_metrics import SALIENCY, seeded_cases


def main() -> int:
    rng = np.random.default_rng(7)
    cases = seeded_cases() + [
        (rng.random((h, w)) ** 2, rng.random((h, w)) < 0.4) for h, w in rng.integers(8, 64, (20, 2))
    ]
    for index, (probability, truth) in enumerate(cases):
        grey, gt = np.rint(probability * 255).astype(np.uint8), truth.astype(np.uint8) * 255
        s, e, w, m = psm.Smeasure(), psm.Emeasure(), psm.WeightedFmeasure(), psm.MAE()
        for measure in (s, e, w, m):
            measure.step(grey, gt)
        em = e.get_results()["em"]
        expected = [s.get_results()["sm"], em["curve"].mean(), em["adp"], w.get_results()["wfm"]]
        expected.append(m.get_results()["mae"])
        got = saliency_scores(probability, truth)
        mask = probability >= 0.5
        distances = (hd95(mask, truth), medpy_binary.hd95(mask, truth)) if mask.any() and truth.any() else (0, 0)
        if not np.allclose([got[name] for name in SALIENCY], expected, atol=1e-12, rtol=0) or not np.isclose(
            *distances, atol=1e-12, rtol=0
        ):
            print(f"case {index}: medico {got} {distances[0]}, libraries {expected} {distances[1]}")
            return 1
    print(f"{len(cases)} maps: medico agrees with pysodmetrics and medpy to 1e-12")
    return 0


if __name__ == "__main__":
    sys.exit(main())
