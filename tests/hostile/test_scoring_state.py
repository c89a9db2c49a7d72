"""Scoring leaves its results with its leaderboard entry or not at all; run numbers out of range are usage errors with
a message."""

from __future__ import annotations

import errno
import functools
import sqlite3
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

import medico
import medico.submission.scorer
from medico.checkpoint import Checkpoint, save_checkpoint
from medico.cli import app
from medico.errors import MedicoError
from medico.leaderboard import Entry, LeaderboardStore
from medico.submission import score_archive
from tests.hostile._archives import perfect_archive

WIDE = {"COLUMNS": "220"}


def _results(archive: Path) -> list[str]:
    """What scoring left beside the archive: result files and temporaries named after it."""
    return sorted(p.name for p in archive.parent.iterdir() if archive.stem in p.name and p != archive)


def _one_line_error(result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    assert not isinstance(result.exception, Exception), "a message, not a traceback"
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


@pytest.fixture
def quick_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scoring waits 0.2 s, not 30, for a database another process holds."""
    monkeypatch.setattr(medico.submission.scorer, "LeaderboardStore", functools.partial(LeaderboardStore, timeout=0.2))


def test_a_locked_database_leaves_no_scores_behind(workspace: Path, quick_lock: None) -> None:
    archive, truth = perfect_archive(workspace)
    database = workspace / "lb" / "medico.sqlite"
    LeaderboardStore(database)
    holder = sqlite3.connect(database, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(MedicoError, match="locked"):
            score_archive(archive, truth, "T", db=database)
    finally:
        holder.close()
    assert _results(archive) == []
    assert LeaderboardStore(database).entries() == []
    score_archive(archive, truth, "T", db=database)  # once the database is free, results and entry come together
    assert _results(archive) == ["T_task1_run1_scores.csv", "T_task1_run1_summary.json"]
    assert len(LeaderboardStore(database).entries()) == 1


def test_a_corrupt_database_leaves_no_scores_behind(workspace: Path) -> None:
    archive, truth = perfect_archive(workspace)
    database = workspace / "lb" / "medico.sqlite"
    database.parent.mkdir()
    database.write_bytes(b"not a database " * 500)
    result = CliRunner().invoke(app, ["score", str(archive), "--truth", str(truth), "--team", "T", "--db",
                                      str(database)], env=WIDE)
    _one_line_error(result, "medico.sqlite")
    assert _results(archive) == []


def test_a_disk_full_while_writing_the_summary_leaves_no_entry_and_no_scores(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive, truth = perfect_archive(workspace)
    database = workspace / "lb" / "medico.sqlite"
    write_text, write_bytes = Path.write_text, Path.write_bytes

    def full_for_summaries(write):
        def writer(path: Path, *args, **kwargs):
            if "summary" in path.name:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            return write(path, *args, **kwargs)

        return writer

    monkeypatch.setattr(Path, "write_text", full_for_summaries(write_text))
    monkeypatch.setattr(Path, "write_bytes", full_for_summaries(write_bytes))
    with pytest.raises(OSError, match="No space"):
        score_archive(archive, truth, "T", db=database)
    monkeypatch.undo()
    assert _results(archive) == []
    assert LeaderboardStore(database).entries() == [], "the entry was rolled back with its files"


def test_a_run_number_too_large_to_store_is_a_message(workspace: Path) -> None:
    archive, truth = perfect_archive(workspace, "X_task1_run99999999999999999999.zip")
    result = CliRunner().invoke(app, ["score", str(archive), "--truth", str(truth), "--team", "X"], env=WIDE)
    _one_line_error(result, "99999999999999999999")
    assert _results(archive) == []


@pytest.mark.parametrize("run", ["0", "-5", "99999999999999999999"])
def test_score_refuses_a_run_number_out_of_range(workspace: Path, run: str) -> None:
    archive, truth = perfect_archive(workspace)
    result = CliRunner().invoke(app, ["score", str(archive), "--truth", str(truth), "--team", "T", "--run", run],
                                env=WIDE)
    _one_line_error(result, f"--run {run}")
    assert _results(archive) == [] and LeaderboardStore().entries() == []


def test_submit_refuses_max_runs_zero(workspace: Path) -> None:
    model = medico.create_model("unet", init_features=4)
    checkpoint = save_checkpoint(workspace / "tiny.pt", Checkpoint("unet", {"init_features": 4}, 32, model.state_dict()))
    images = workspace / "images"
    images.mkdir()
    Image.new("RGB", (16, 12)).save(images / "a.png")
    result = CliRunner().invoke(app, ["submit", "--team", "T", "--checkpoint", str(checkpoint), "--images",
                                      str(images), "--max-runs", "0"], env=WIDE)
    _one_line_error(result, "--max-runs 0", "from 1")
    assert not list(workspace.glob("submissions/**/*.zip"))
