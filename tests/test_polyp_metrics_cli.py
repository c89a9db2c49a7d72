"""--paper-metrics in `medico evaluate`, `medico score` and `medico leaderboard`, and the leaderboard rows that hold
the papers' measures (schema 6 and later: older databases keep their rows, with empty values)."""

from __future__ import annotations

import json
import sqlite3
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from medico.cli import app
from medico.data.synthetic import synthetic_frame
from medico.leaderboard import Entry, LeaderboardStore
from medico.leaderboard.entry import PAPER_SCORES, check_entry
from medico.leaderboard.errors import LeaderboardError
from medico.leaderboard.store import MIGRATIONS, SCHEMA_VERSION
from medico.polyp_metrics import MASK_INPUT, PAPER_METRICS
from medico.submission import mask_png


def invoke(*args: object) -> Result:
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "10000"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_evaluate_with_paper_metrics_adds_their_columns_and_policy(run_dir: Path) -> None:
    result = invoke("evaluate", "1", "--device", "cpu", "--paper-metrics")
    assert result.exit_code == 0, result.output
    for name in PAPER_METRICS:
        assert name in result.output
    folder = run_dir / "evaluations" / "1-best"
    frame = pd.read_csv(folder / "per_image.csv")
    saved = json.loads((folder / "metrics.json").read_text())
    for name in PAPER_METRICS:
        assert saved["summary"][name] == pytest.approx(frame[name].mean())
        assert f"{name}_std" in saved["summary"]
    assert ((frame["smeasure"] >= 0) & (frame["smeasure"] <= 1)).all() and (frame["hd95"] >= 0).all()
    assert "HD95" in result.output or "hd95" in saved["policy"]["paper_measures"]
    assert "probability map" in saved["policy"]["paper_measures"]["input"]

    plain = invoke("evaluate", "1", "--device", "cpu")
    assert plain.exit_code == 0, plain.output
    assert not set(PAPER_METRICS) & set(pd.read_csv(run_dir / "evaluations" / "2-best" / "per_image.csv").columns)


@pytest.fixture
def truth(workspace: Path) -> Path:
    """Ground-truth masks of a few sizes, one of them empty (no polyp)."""
    folder = workspace / "truth"
    folder.mkdir()
    rng = np.random.default_rng(5)
    for index, (height, width) in enumerate([(40, 64), (48, 56), (36, 60)]):
        _, mask = synthetic_frame(rng, height, width, polyps=0 if index == 2 else 1)
        (folder / f"case{index}.png").write_bytes(mask_png(mask))
    return folder


def test_score_with_paper_metrics_records_them_and_the_leaderboard_shows_them(workspace: Path, truth: Path) -> None:
    archive = workspace / "Oracle_task1_run1.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for mask in sorted(truth.iterdir()):
            zipped.writestr(mask.name, mask.read_bytes())
    result = invoke("score", archive, "--truth", truth, "--team", "Oracle", "--paper-metrics")
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(workspace / "Oracle_task1_run1_scores.csv").set_index("name")
    assert list(rows["smeasure"]) == pytest.approx([1.0] * 3) and list(rows["mae"]) == [0.0] * 3
    assert list(rows["hd95"]) == [0.0] * 3
    # the toolbox scores the weighted F-measure of an empty truth 0, even for the empty mask that matches it
    assert list(rows["wfm"]) == pytest.approx([1.0, 1.0, 0.0])
    summary = json.loads((workspace / "Oracle_task1_run1_summary.json").read_text())
    assert summary["metric_policy"]["paper_measures"]["input"] == MASK_INPUT
    (entry,) = LeaderboardStore().entries()
    assert entry.smeasure == pytest.approx(1.0) and entry.hd95 == 0.0 and entry.wfm == pytest.approx(2 / 3)

    shipped = Path(__file__).resolve().parents[1] / "baselines" / "reported.csv"  # this checkout's, not an install's
    (workspace / "baselines").mkdir()
    (workspace / "baselines" / "reported.csv").write_bytes(shipped.read_bytes())
    board = invoke("leaderboard", "--split", "test", "--paper-metrics", "--with-published")
    assert board.exit_code == 0, board.output
    for header in ("meanEm", "wFm", "MAE", "HD95"):
        assert header in board.output
    assert "0.9150" in board.output and "0.9440" in board.output, "PraNet's published S-measure and meanEm"
    assert "HD95" not in invoke("leaderboard", "--split", "test").output
    markdown = invoke("leaderboard", "--split", "test", "--paper-metrics", "--format", "markdown").output
    assert "| S | meanEm | wFm | MAE | HD95 |" in markdown


def test_a_schema_5_database_gains_the_columns_and_keeps_its_rows_with_empty_values(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as connection:
        for script in MIGRATIONS[:5]:
            connection.executescript(script)
        connection.executescript(
            "CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (5);"
            "INSERT INTO entries (team, model, task, split, dice, iou, source, created) "
            "VALUES ('old', 'unet', 'segmentation', 'val', 0.8, 0.7, 'measured', '2026-01-01T00:00:00+00:00');"
        )
    store = LeaderboardStore(path)
    assert store.schema_version() == SCHEMA_VERSION == 7
    (old,) = store.entries()
    assert old.dice == 0.8 and all(getattr(old, name) is None for name in PAPER_SCORES)
    store.add(Entry(team="new", model="unet", dice=0.9, iou=0.8, smeasure=0.91, mean_em=0.95, wfm=0.88, mae=0.03,
                    hd95=12.5))  # fmt: skip
    new = store.entries(team="new")[0]
    assert (new.smeasure, new.mean_em, new.wfm, new.mae, new.hd95) == (0.91, 0.95, 0.88, 0.03, 12.5)


@pytest.mark.parametrize(
    ("field", "value", "message"), [("wfm", 1.2, "wfm: expected a value in \\[0, 1\\]"), ("hd95", -1.0, "hd95")]
)
def test_an_entry_with_a_paper_measure_out_of_range_is_refused(field: str, value: float, message: str) -> None:
    with pytest.raises(LeaderboardError, match=message):
        check_entry(Entry(team="t", model="m", dice=0.5, **{field: value}))
