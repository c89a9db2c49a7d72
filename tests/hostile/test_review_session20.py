"""Review of session 20's additions: ``medico compare --sweeps`` on a sweep summary someone handed over, and
``--runtime openvino`` on a participant's ONNX file (what the gate checks is what OpenVINO runs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medico.cli import app
from tests.test_compare import NAMES, scored_run, sweep_of

runner = CliRunner()
GRAPH_RUNTIMES = pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
SIZE = 8


def said(result: object) -> str:
    return " ".join(result.output.split())


def test_a_sweep_listing_a_run_twice_is_refused_rather_than_weighing_it_double(workspace: Path) -> None:
    """A hand-edited summary listing the best seed three times would pull the sweep's mean towards it."""
    base = np.random.default_rng(0).integers(20, 70, len(NAMES))
    for run, shift in (("1-attunet", 25), ("2-attunet", 0), ("3-attunet", 10), ("4-attunet", 10)):
        scored_run(workspace, run, NAMES, list(base + shift))
    sweep_of(workspace, "1-attunet", ["1-attunet", "1-attunet", "1-attunet", "2-attunet"])
    sweep_of(workspace, "2-attunet", ["3-attunet", "4-attunet"])
    result = runner.invoke(app, ["compare", "1", "2", "--sweeps"])
    assert result.exit_code == 2, result.output
    assert "summary.json lists run 1-attunet more than once" in said(result)
