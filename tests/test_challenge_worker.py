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
from medico.challenge.settings import SETTINGS_FILE, ChallengeError, read_settings
from medico.challenge.submissions import add_submission, team_allowance
from medico.challenge.supervisor import WorkerSupervisor
from medico.challenge.teams import add_team
from medico.challenge.worker import drain, run_worker, score_next
from medico.files import process_alive
from tests.challenge_setup import (
    NAMES,
    archive,
    crashing_worker,
    make_challenge,
    partial_mask,
    perfect_archive,
    slow_worker,
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


def test_an_interrupted_rescore_puts_its_submission_back_in_the_queue_and_ends_its_scoring_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    challenge = make_challenge(tmp_path)
    _submit(challenge, perfect_archive(tmp_path / "a.zip"))

    def interrupted(*args: object) -> None:  # in the child: Ctrl+C reaches medico challenge rescore meanwhile
        _slow(tmp_path)
        os.kill(os.getppid(), signal.SIGINT)
        time.sleep(3600)

    monkeypatch.setattr(medico.challenge.scoring, "score_for_challenge", interrupted)
    with pytest.raises(KeyboardInterrupt):
        score_next(challenge)
    assert _states(challenge) == ["queued"] and _crashes(challenge) == [0]
    assert not process_alive(_child_pid(tmp_path))


def _another_archive(path: Path) -> Path:
    """A valid archive unlike :func:`perfect_archive` (one mask partly wrong)."""
    return archive(path, {**{name: truth_mask() for name in NAMES}, "case0": partial_mask()})


def _slow(folder: Path) -> None:
    """Called in the child scoring an archive: records its process id in ``folder``."""
    (folder / "child.pid").write_text(str(os.getpid()))


def _child_pid(folder: Path) -> int:
    return int((folder / "child.pid").read_text())


def _crashes(challenge: Challenge) -> list[int]:
    with challenge.database.read() as connection:
        return [row[0] for row in connection.execute("SELECT crashes FROM submissions ORDER BY id")]


def _slow_on(name: str, folder: Path) -> object:
    """A scorer that takes an hour on the archive uploaded as ``name`` and scores any other as usual."""
    real = medico.challenge.scoring.score_for_challenge

    def score(archive: Path, *args: object) -> object:
        if archive.name == name:
            _slow(folder)
            time.sleep(3600)
        return real(archive, *args)  # type: ignore[arg-type]

    return score


def test_an_archive_past_the_time_limit_is_invalid_naming_the_limit_and_the_next_is_scored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("medico.challenge.settings.MIN_SCORING_SECONDS", 0.1)  # the mechanism, not the policy's floor
    challenge = make_challenge(tmp_path, max_scoring_seconds=0.5, max_total=3)
    slow = _submit(challenge, _another_archive(tmp_path / "slow.zip"))
    good = _submit(challenge, perfect_archive(tmp_path / "good.zip"))
    monkeypatch.setattr(medico.challenge.scoring, "score_for_challenge", _slow_on(f"{slow}.zip", tmp_path))
    caplog.set_level(logging.INFO, "medico.challenge.worker")
    assert drain(challenge) == 2
    assert _states(challenge) == ["invalid", "scored"] and _messages(challenge, good) == []
    assert "took longer than the 0.5 s an archive may take" in _messages(challenge, slow)[0]
    assert f"submission {slow}: stopped at the time limit of 0.5 s (max_scoring_seconds); invalid" in caplog.text
    assert not process_alive(_child_pid(tmp_path))
    assert _left(challenge) == 1  # the archive's doing: it counts, as an invalid archive does


def test_an_archive_past_the_memory_limit_is_invalid_naming_the_limit_and_the_next_is_scored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    challenge = make_challenge(tmp_path, max_scoring_bytes=64 * 2**20)
    greedy = _submit(challenge, _another_archive(tmp_path / "greedy.zip"))
    good = _submit(challenge, perfect_archive(tmp_path / "good.zip"))
    real = medico.challenge.scoring.score_for_challenge

    def score(archive: Path, *args: object) -> object:
        if archive.name == f"{greedy}.zip":
            bytearray(2**30)  # as decoding a mask that expands past every check would
        return real(archive, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(medico.challenge.scoring, "score_for_challenge", score)
    caplog.set_level(logging.INFO, "medico.challenge.worker")
    assert drain(challenge) == 2
    assert _states(challenge) == ["invalid", "scored"] and _messages(challenge, good) == []
    assert "needed more than the 64 MiB of memory an archive may take" in _messages(challenge, greedy)[0]
    assert f"submission {greedy}: stopped at the memory limit of 64 MiB (max_scoring_bytes); invalid" in caplog.text


def test_an_archive_whose_scoring_process_crashes_twice_is_invalid_uncounted_and_the_worker_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    challenge = make_challenge(tmp_path, max_total=3)
    boom = _submit(challenge, _another_archive(tmp_path / "boom.zip"))
    _submit(challenge, perfect_archive(tmp_path / "good.zip"))
    real = medico.challenge.scoring.score_for_challenge

    def score(archive: Path, *args: object) -> object:
        if archive.name == f"{boom}.zip":
            os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's out-of-memory killer would
        return real(archive, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(medico.challenge.scoring, "score_for_challenge", score)
    caplog.set_level(logging.INFO, "medico.challenge.worker")
    assert drain(challenge) == 3  # the crashed archive twice, then the next one
    assert _states(challenge) == ["invalid", "scored"] and _messages(challenge, boom) == [SERVER_FAULT]
    assert f"submission {boom}: the process scoring it died (killed by SIGKILL); queued again" in caplog.text
    assert f"submission {boom}: the process scoring it died (killed by SIGKILL), 2 times; marked invalid" in caplog.text
    assert _left(challenge) == 2  # only the scored one counts


def test_a_stopping_server_ends_the_archive_being_scored_and_queues_it_again_with_no_crash_counted(
    tmp_path: Path,
) -> None:
    challenge = make_challenge(tmp_path)
    _submit(challenge, perfect_archive(tmp_path / "a.zip"))
    with WorkerSupervisor(challenge.folder, 0.05, target=slow_worker) as supervisor:
        _until(lambda: (challenge.folder / "child.pid").exists())
    assert supervisor.process is not None and supervisor.process.exitcode == 0  # it stopped, it was not killed
    assert _states(challenge) == ["queued"] and _crashes(challenge) == [0]
    assert not process_alive(_child_pid(challenge.folder))


def test_a_challenge_database_of_schema_version_1_is_upgraded_and_keeps_its_submissions(tmp_path: Path) -> None:
    challenge = make_challenge(tmp_path)
    _submit(challenge, perfect_archive(tmp_path / "a.zip"))
    path = challenge.folder / DATABASE_FILE
    with sqlite3.connect(path) as connection:  # as medico before the crash count, model's name and fault wrote it
        connection.execute("ALTER TABLE submissions DROP COLUMN fault")
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


def _left(challenge: Challenge) -> int:
    """Team alpha's uploads left in all."""
    return team_allowance(challenge, team_of(challenge, "alpha"), NOW).left_total


def _fails_on_the_server(*args: object) -> None:
    raise RuntimeError("a bug in the scorer")


def test_an_archive_the_server_failed_to_score_never_counts_against_the_teams_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    challenge = make_challenge(tmp_path, max_total=2)
    _submit(challenge, perfect_archive(tmp_path / "a.zip"))
    assert _left(challenge) == 1  # queued: it counts until its outcome says otherwise
    monkeypatch.setattr(medico.challenge.scoring, "score_for_challenge", _fails_on_the_server)
    score_next(challenge)
    assert _states(challenge) == ["invalid"] and _messages(challenge, 1) == [SERVER_FAULT]
    assert _left(challenge) == 2


def test_the_same_archive_sent_again_after_a_server_fault_is_scored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resending is how a team retries: the server's failure must not stick to the archive, whose first submission
    (the duplicate's answer) is queued again and scored once the server works."""
    challenge = make_challenge(tmp_path, max_total=2)
    with monkeypatch.context() as broken:
        broken.setattr(medico.challenge.scoring, "score_for_challenge", _fails_on_the_server)
        _submit(challenge, perfect_archive(tmp_path / "a.zip"))
        score_next(challenge)
    assert _states(challenge) == ["invalid"]
    assert _submit(challenge, perfect_archive(tmp_path / "a.zip")) == 1
    assert _states(challenge) == ["queued"] and _messages(challenge, 1) == []
    score_next(challenge)
    assert _states(challenge) == ["scored"] and _left(challenge) == 1


def test_the_same_invalid_archive_sent_again_stays_invalid(tmp_path: Path) -> None:
    challenge = make_challenge(tmp_path, max_total=2)
    missing = archive(tmp_path / "missing.zip", {n: truth_mask() for n in NAMES[1:]})
    _submit(challenge, missing)
    score_next(challenge)
    assert _submit(challenge, missing) == 1 and _states(challenge) == ["invalid"]


def test_a_submission_whose_scoring_killed_the_worker_twice_does_not_count(tmp_path: Path) -> None:
    challenge = make_challenge(tmp_path, max_total=2)
    _submit(challenge, perfect_archive(tmp_path / "a.zip"))
    for _ in range(MAX_CRASHES):
        claim_next(challenge, worker=_dead_pid())
        requeue_abandoned(challenge, process_alive)
    assert _states(challenge) == ["invalid"] and _left(challenge) == 2


@pytest.mark.parametrize(("count_invalid", "left"), [(True, 1), (False, 2)])
def test_an_invalid_archive_counts_against_the_limits_unless_count_invalid_is_false(
    tmp_path: Path, count_invalid: bool, left: int
) -> None:
    challenge = make_challenge(tmp_path, max_total=2, count_invalid=count_invalid)
    _submit(challenge, archive(tmp_path / "missing.zip", {n: truth_mask() for n in NAMES[1:]}))
    score_next(challenge)
    assert _states(challenge) == ["invalid"] and "no mask for an image" in _messages(challenge, 1)[0]
    assert _left(challenge) == left
    assert read_settings(challenge.folder / SETTINGS_FILE).count_invalid is count_invalid  # kept in challenge.toml


def test_a_database_of_schema_version_3_is_upgraded_and_its_server_faults_stop_counting(tmp_path: Path) -> None:
    challenge = make_challenge(tmp_path, max_total=3)
    for index in range(2):
        _submit(challenge, archive(tmp_path / f"{index}.zip", {n: truth_mask() for n in NAMES[index:]}))
    path = challenge.folder / DATABASE_FILE
    old_fault = "the server could not score this archive (its fault, not the archive's); the organiser has been told"
    with sqlite3.connect(path) as connection:  # as medico before faults were recorded wrote it
        connection.execute("ALTER TABLE submissions DROP COLUMN fault")
        connection.execute("UPDATE submissions SET state = 'invalid', messages = ? WHERE id = 1",
                           (json.dumps([old_fault]),))
        connection.execute("""UPDATE submissions SET state = 'invalid', messages = '["missing: case0"]' WHERE id = 2""")
        connection.execute("UPDATE schema_version SET version = 3")
    reopened = Challenge.open(challenge.folder)
    with reopened.database.read() as connection:
        assert [row[0] for row in connection.execute("SELECT fault FROM submissions ORDER BY id")] == ["server",
                                                                                                       "archive"]
    assert _left(reopened) == 2
