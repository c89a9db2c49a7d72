"""Scoring leaves its results with its leaderboard entry or not at all; run numbers out of range are usage errors with
a message; a leaderboard someone may only read can still be viewed."""

from __future__ import annotations

import errno
import functools
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

import medico
import medico.submission.scorer
from medico.cli import app
from medico.errors import MedicoError
from medico.files import OutputError
from medico.leaderboard import Entry, LeaderboardStore
from medico.runs.checkpoint import Checkpoint, save_checkpoint
from medico.submission import score_archive
from tests.hostile._archives import perfect_archive

WIDE = {"COLUMNS": "220"}
REPOSITORY = Path(__file__).resolve().parents[2]


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
    with pytest.raises(OutputError, match="disk full while writing .*summary"):
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
    spec = Checkpoint("unet", {"init_features": 4}, 32, model.state_dict())
    checkpoint = save_checkpoint(workspace / "tiny.pt", spec)
    images = workspace / "images"
    images.mkdir()
    Image.new("RGB", (16, 12)).save(images / "a.png")
    result = CliRunner().invoke(app, ["submit", "--team", "T", "--checkpoint", str(checkpoint), "--images",
                                      str(images), "--max-runs", "0"], env=WIDE)
    _one_line_error(result, "--max-runs 0", "from 1")
    assert not list(workspace.glob("submissions/**/*.zip"))


def _unprivileged(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m medico ARGS`` as a user that permission bits bind: root ignores them, except inside a new user
    namespace (``unshare --user``), where it may no longer override them."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("unshare") is None or subprocess.run(["unshare", "--user", "true"]).returncode != 0:
            pytest.skip("running as root, and no user namespace to drop the right to ignore permissions")
        prefix = ["unshare", "--user"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPOSITORY), os.environ.get("PYTHONPATH", "")]),
           **WIDE}
    return subprocess.run([*prefix, sys.executable, "-m", "medico", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture
def read_only_board(workspace: Path) -> Iterator[Path]:
    """A leaderboard with one entry, in a folder (and file) nobody may write to."""
    database = workspace / "board" / "medico.sqlite"
    LeaderboardStore(database).add(Entry(team="readers", model="unet", run=1, iou=0.7, dice=0.8))
    database.chmod(0o444)
    database.parent.chmod(0o555)
    yield database
    database.parent.chmod(0o755)
    database.chmod(0o644)


def test_a_read_only_leaderboard_can_be_viewed(workspace: Path, read_only_board: Path) -> None:
    shown = _unprivileged("leaderboard", "--db", str(read_only_board), cwd=workspace)
    assert shown.returncode == 0, shown.stderr
    assert "readers" in shown.stdout
    exported = _unprivileged("leaderboard", "--db", str(read_only_board), "--format", "csv", cwd=workspace)
    assert exported.returncode == 0 and "readers" in exported.stdout
    assert sorted(p.name for p in read_only_board.parent.iterdir()) == ["medico.sqlite"]


def test_scoring_into_a_read_only_leaderboard_fails_clearly_and_leaves_nothing(
    workspace: Path, read_only_board: Path
) -> None:
    archive, truth = perfect_archive(workspace)
    scored = _unprivileged("score", str(archive), "--truth", str(truth), "--team", "T", "--db", str(read_only_board),
                           cwd=workspace)
    assert scored.returncode == 2, scored.stderr
    assert _results(archive) == []
    assert "read-only" in scored.stderr and "Traceback" not in scored.stderr


def test_a_missing_leaderboard_shows_an_empty_board_and_creates_nothing(workspace: Path) -> None:
    database = workspace / "nowhere" / "medico.sqlite"
    result = CliRunner().invoke(app, ["leaderboard", "--db", str(database)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "medico score" in result.stderr and str(database) in result.stderr
    assert not (workspace / "nowhere").exists()
    published = CliRunner().invoke(app, ["leaderboard", "--db", str(database), "--with-published"], env=WIDE)
    assert published.exit_code == 0 and "HarDNet-MSEG" in published.stdout
    assert not (workspace / "nowhere").exists()
