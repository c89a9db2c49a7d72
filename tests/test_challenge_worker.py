"""The server's scoring worker survives its own death: a dead worker is replaced, a submission whose scoring kills
it is retried a bounded number of times then marked invalid, and the queue goes on."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

import medico.challenge.scoring
from medico.challenge.database import DATABASE_FILE, MIGRATIONS
from medico.challenge.folder import Challenge
from medico.challenge.queue import MAX_CRASHES, SERVER_FAULT, claim_next, requeue_abandoned
from medico.challenge.settings import ChallengeError
from medico.challenge.submissions import add_submission
from medico.challenge.supervisor import WorkerSupervisor
from medico.challenge.teams import add_team
from medico.challenge.worker import run_worker, score_next
from medico.files import process_alive
from tests.challenge_setup import (
    NAMES,
    archive,
    crashing_worker,
    make_challenge,
    perfect_archive,
    stuck_worker,
    team_of,
    truth_mask,
)

NOW = datetime(2026, 12, 1, 12, tzinfo=timezone.utc)


def _submit(challenge: Challenge, path: Path) -> int:
    """Add the archive at ``path`` as a submission of team alpha (added on first use); its id."""
    if _team_count(challenge) == 0:
        add_team(challenge, "alpha", NOW)
    upload = challenge.uploads / f"incoming-{path.name}"
    upload.write_bytes(path.read_bytes())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return add_submission(challenge, team_of(challenge, "alpha"), upload, digest, NOW).id


def _team_count(challenge: Challenge) -> int:
    with challenge.database.read() as connection:
        return connection.execute("SELECT COUNT(*) FROM teams").fetchone()[0]


def _states(challenge: Challenge) -> list[str]:
    with challenge.database.read() as connection:
        return [row[0] for row in connection.execute("SELECT state FROM submissions ORDER BY id")]


def _messages(challenge: Challenge, submission: int) -> list[str]:
    with challenge.database.read() as connection:
        row = connection.execute("SELECT messages FROM submissions WHERE id = ?", (submission,)).fetchone()
    return json.loads(row[0])


def _dead_pid() -> int:
    """The id of a process that has ended."""
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)


def _until(condition: object, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_submission_that_kills_the_worker_twice_is_invalid_and_the_next_is_scored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    challenge = make_challenge(tmp_path)
    boom = _submit(challenge, archive(tmp_path / "boom.zip", {**{n: truth_mask() for n in NAMES},
                                                               "boom": truth_mask()}))
    good = _submit(challenge, perfect_archive(tmp_path / "good.zip"))
    caplog.set_level(logging.WARNING, "medico.challenge.supervisor")
    with WorkerSupervisor(challenge.folder, 0.05, target=crashing_worker, backoff=0.05) as supervisor:
        _until(lambda: _states(challenge) == ["invalid", "scored"])
        restarts = supervisor.restarts
    assert restarts == MAX_CRASHES == 2  # one new worker after each death; the third scored the next submission
    assert _messages(challenge, boom) == [SERVER_FAULT] and _messages(challenge, good) == []
    assert caplog.text.count("died (exit status 70); starting a new one") == 2
    worker_log = capfd.readouterr().err
    assert "submission 1: the scoring worker died while scoring it; queued again" in worker_log
    assert "submission 1: the scoring worker died while scoring it 2 times; marked invalid" in worker_log
    assert f"submission {good}: scored" in worker_log


def test_a_worker_killed_by_the_servers_shutdown_leaves_its_submission_queued_with_no_crash_counted(
    tmp_path: Path,
) -> None:
    """Two restarts while a slow but honest archive is scored must not mark it invalid as a crash would."""
    challenge = make_challenge(tmp_path)
    _submit(challenge, perfect_archive(tmp_path / "slow.zip"))
    with WorkerSupervisor(challenge.folder, 0.05, target=stuck_worker, grace=0.5):
        _until(lambda: _states(challenge) == ["scoring"])
    assert _states(challenge) == ["queued"]
    with challenge.database.read() as connection:
        assert [tuple(row) for row in connection.execute("SELECT worker, crashes FROM submissions")] == [(None, 0)]
    assert requeue_abandoned(challenge, process_alive).queued == ()  # nothing left for the next start to count


def test_a_dead_workers_submission_is_queued_again_then_marked_invalid_on_its_second_death(tmp_path: Path) -> None:
    challenge = make_challenge(tmp_path)
    for index in range(2):
        _submit(challenge, archive(tmp_path / f"{index}.zip", {n: truth_mask() for n in NAMES[index:]}))
    claim_next(challenge, worker=_dead_pid())
    assert requeue_abandoned(challenge, process_alive).queued == (1,)
    assert _states(challenge) == ["queued", "queued"]
    claim_next(challenge, worker=_dead_pid())  # the same submission, oldest in the queue, kills its next worker
    assert requeue_abandoned(challenge, process_alive).given_up == (1,)
    assert _states(challenge) == ["invalid", "queued"] and _messages(challenge, 1) == [SERVER_FAULT]
    with challenge.database.write() as connection:  # a new scoring round gives every submission its tries again
        connection.execute("UPDATE submissions SET state = 'queued', crashes = 0")
    claim_next(challenge, worker=_dead_pid())
    assert requeue_abandoned(challenge, process_alive).queued == (1,)


class _Passes:
    """Stops :func:`run_worker` after ``count`` passes of its loop, calling ``each(n)`` on pass n; waits take no
    time."""

    def __init__(self, count: int, each: object = None) -> None:
        self.count, self.each, self.passes = count, each, 0

    def is_set(self) -> bool:
        self.passes += 1
        if self.each is not None:
            self.each(self.passes)  # type: ignore[operator]
        return self.passes > self.count

    def wait(self, timeout: float | None = None) -> bool:
        return False


def _run_worker(challenge: Challenge, stop: _Passes) -> None:
    handler = signal.getsignal(signal.SIGINT)
    try:
        run_worker(challenge.folder, stop, poll=0)
    finally:
        signal.signal(signal.SIGINT, handler)


def test_the_running_worker_queues_again_what_a_killed_rescore_left_scoring(tmp_path: Path) -> None:
    challenge = make_challenge(tmp_path)
    _submit(challenge, perfect_archive(tmp_path / "a.zip"))

    def rescore_killed_meanwhile(number: int) -> None:
        if number == 1:  # after the worker started: a medico challenge rescore claims it, then is killed
            claim_next(challenge, worker=_dead_pid())

    _run_worker(challenge, _Passes(3, rescore_killed_meanwhile))
    assert _states(challenge) == ["scored"]


def test_a_claim_under_the_new_workers_own_process_id_is_a_dead_workers(tmp_path: Path) -> None:
    """Process ids are given again: the new worker may get the id of the dead one whose claim is still recorded."""
    challenge = make_challenge(tmp_path)
    _submit(challenge, perfect_archive(tmp_path / "a.zip"))
    claim_next(challenge, worker=os.getpid())
    _run_worker(challenge, _Passes(2))
    assert _states(challenge) == ["scored"]


def test_an_interrupted_rescore_puts_its_submission_back_in_the_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    challenge = make_challenge(tmp_path)
    _submit(challenge, perfect_archive(tmp_path / "a.zip"))

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(medico.challenge.scoring, "score_for_challenge", interrupted)
    with pytest.raises(KeyboardInterrupt):
        score_next(challenge)
    assert _states(challenge) == ["queued"]


def test_a_challenge_database_of_schema_version_1_is_upgraded_and_keeps_its_submissions(tmp_path: Path) -> None:
    challenge = make_challenge(tmp_path)
    _submit(challenge, perfect_archive(tmp_path / "a.zip"))
    path = challenge.folder / DATABASE_FILE
    with sqlite3.connect(path) as connection:  # as medico before the crash count and the model's name wrote it
        connection.execute("ALTER TABLE submissions DROP COLUMN crashes")
        connection.execute("ALTER TABLE submissions DROP COLUMN model")
        connection.execute("UPDATE schema_version SET version = 1")
    reopened = Challenge.open(challenge.folder)
    assert _states(reopened) == ["queued"]
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT version FROM schema_version").fetchone() == (len(MIGRATIONS),)
        assert connection.execute("SELECT crashes, model FROM submissions").fetchall() == [(0, None)]
    assert score_next(reopened) == 1 and _states(reopened) == ["scored"]


def test_a_sqlite_file_without_a_schema_version_is_refused_not_upgraded(tmp_path: Path) -> None:
    challenge = make_challenge(tmp_path)
    with sqlite3.connect(challenge.folder / DATABASE_FILE) as connection:
        connection.execute("DROP TABLE schema_version")
    with pytest.raises(ChallengeError, match="not a challenge database"):
        Challenge.open(challenge.folder)
