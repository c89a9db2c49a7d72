"""The organiser's side of a hosted challenge: init, settings, the partition, teams and tokens, close, rescore."""

from __future__ import annotations

import socket
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from medico.challenge.database import DATABASE_FILE
from medico.challenge.folder import Challenge
from medico.challenge.partition import draw_partition
from medico.challenge.phase import current_phase
from medico.challenge.queue import partition
from medico.challenge.settings import SETTINGS_FILE, ChallengeError, Settings, read_settings
from medico.challenge.teams import authenticate
from medico.challenge.worker import TruthChangedError, drain, score_next
from medico.cli import app
from medico.submission import mask_png
from tests.challenge_setup import (
    HEIGHT,
    NAMES,
    WIDTH,
    make_challenge,
    make_test_set,
    partial_mask,
    perfect_archive,
    team_of,
)

NOW = datetime(2026, 12, 1, 12, tzinfo=timezone.utc)
runner = CliRunner()


def _text(result: object) -> str:
    """What a command printed, on one line (rich wraps long lines at the terminal's width)."""
    return " ".join(result.output.split())  # type: ignore[attr-defined]


def _init(tmp_path: Path, *extra: str) -> tuple[Path, object]:
    truth, images = make_test_set(tmp_path / "data")
    folder = tmp_path / "challenge"
    command = ["challenge", "init", str(folder), "--truth", str(truth), "--images", str(images), "--name", "Polyps"]
    return folder, runner.invoke(app, [*command, *extra])


def test_init_records_settings_partition_and_truth_fingerprint_without_copying_the_truth(tmp_path: Path) -> None:
    folder, result = _init(tmp_path, "--seed", "7", "--max-per-day", "2", "--closes", "2027-01-01T00:00",
                           "--max-scoring-seconds", "30", "--no-count-invalid")
    assert result.exit_code == 0, result.output
    assert "2 public and 2 private" in _text(result)
    settings = read_settings(folder / SETTINGS_FILE)
    assert (settings.seed, settings.max_per_day, settings.max_total) == (7, 2, 5)
    assert (settings.max_scoring_seconds, settings.max_scoring_bytes, settings.count_invalid) == (30, 4 * 2**30, False)
    assert settings.closes == datetime(2027, 1, 1, tzinfo=timezone.utc)
    challenge = Challenge.open(folder)
    assert partition(challenge) == draw_partition(NAMES, 0.5, 7)
    assert sorted(p.name for p in folder.iterdir()) == sorted([SETTINGS_FILE, DATABASE_FILE, "uploads"])
    assert not list(folder.rglob("*.png"))


def test_the_same_seed_draws_the_same_partition_and_another_seed_may_not() -> None:
    names = [f"n{i}" for i in range(40)]
    assert draw_partition(names, 0.5, 1) == draw_partition(list(reversed(names)), 0.5, 1)
    assert draw_partition(names, 0.5, 1) != draw_partition(names, 0.5, 2)


@given(st.integers(2, 60), st.floats(0.001, 0.999), st.integers(0, 2**32))
def test_both_parts_always_hold_an_image(count: int, fraction: float, seed: int) -> None:
    parts = draw_partition([f"n{i}" for i in range(count)], fraction, seed)
    assert set(parts.values()) == {"public", "private"}


def test_init_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "challenge").mkdir()
    (tmp_path / "challenge" / "notes.txt").write_text("mine")
    _, result = _init(tmp_path)
    assert result.exit_code == 2
    assert "expected a new or empty folder" in _text(result)
    assert sorted(p.name for p in (tmp_path / "challenge").iterdir()) == ["notes.txt"]


def test_init_refuses_truth_that_lacks_a_test_image_and_writes_nothing(tmp_path: Path) -> None:
    truth, images = make_test_set(tmp_path / "data")
    (truth / "case2.png").unlink()
    folder = tmp_path / "challenge"
    result = runner.invoke(
        app, ["challenge", "init", str(folder), "--truth", str(truth), "--images", str(images), "--name", "x"]
    )
    assert result.exit_code == 2
    assert "no mask for 1 of the 4 images" in _text(result) and "case2" in _text(result)
    assert not folder.exists() or not any(folder.iterdir())


def test_init_refuses_truth_whose_size_differs_from_its_image(tmp_path: Path) -> None:
    truth, images = make_test_set(tmp_path / "data")
    (truth / "case1.png").write_bytes(mask_png(partial_mask()[:, :11]))
    result = runner.invoke(
        app, ["challenge", "init", str(tmp_path / "c"), "--truth", str(truth), "--images", str(images), "--name", "x"]
    )
    assert result.exit_code == 2
    assert "1 masks differ in size" in _text(result) and "case1" in _text(result)


@pytest.mark.parametrize("kind", ["rgb-frames", "grey-photos"])
def test_init_refuses_truth_that_is_not_binary_masks_naming_the_files_and_leaves_nothing(
    tmp_path: Path, kind: str
) -> None:
    """The test images themselves given as the truth: every upload would end invalid, at the teams' cost."""
    truth, images = make_test_set(tmp_path / "data")
    noise = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    for name in NAMES[1:]:
        frame = Image.fromarray(noise)
        (frame if kind == "rgb-frames" else frame.convert("L")).save(truth / f"{name}.png")
    folder = tmp_path / "challenge"
    folder.mkdir()  # an empty folder stays empty
    result = runner.invoke(
        app, ["challenge", "init", str(folder), "--truth", str(truth), "--images", str(images), "--name", "x"]
    )
    assert result.exit_code == 2 and len(result.output.splitlines()) == 1
    assert f"--truth {truth}: expected binary masks, but 3 of the 4 masks" in _text(result)
    assert "(case1, case2, case3)" in _text(result) and "not binary" in _text(result)
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--public-fraction", "1", "--public-fraction: expected a number strictly between 0 and 1"),
        ("--public-fraction", "nan", "--public-fraction: expected a number strictly between 0 and 1"),
        ("--max-total", "0", "--max-total: expected a whole number of at least 1"),
        ("--max-per-day", "0", "--max-per-day: expected a whole number of at least 1"),
        ("--closes", "next week", "--closes 'next week': expected a date and time"),
        ("--max-scoring-seconds", "0", "--max-scoring-seconds: expected a number of seconds from 5 to 86,400"),
        ("--max-scoring-seconds", "0.001", "--max-scoring-seconds: expected a number of seconds from 5 to 86,400"),
        ("--max-scoring-seconds", "inf", "--max-scoring-seconds: expected a number of seconds from 5 to 86,400"),
        ("--max-scoring-bytes", "0", "--max-scoring-bytes: expected a whole number of at least 67108864"),
        ("--max-scoring-bytes", "1", "--max-scoring-bytes: expected a whole number of at least 67108864"),
        ("--opens", "9999-12-31T23:59:59-23:59", "--opens 9999-12-31T23:59:59-23:59: expected a time between years 1"),
        ("--closes", "0001-01-01T00:00+01:00", "--closes 0001-01-01T00:00:00+01:00: expected a time between years 1"),
    ],
)
def test_bad_settings_are_one_line_errors(tmp_path: Path, option: str, value: str, message: str) -> None:
    folder, result = _init(tmp_path, option, value)
    assert result.exit_code == 2
    assert message in _text(result) and len(result.output.splitlines()) == 1
    assert not folder.exists()


def test_a_close_before_the_opening_is_refused(tmp_path: Path) -> None:
    _, result = _init(tmp_path, "--opens", "2027-01-02", "--closes", "2027-01-01")
    assert result.exit_code == 2
    assert "expected a time after --opens" in _text(result)


def test_a_settings_file_with_an_unknown_key_names_the_file(tmp_path: Path) -> None:
    challenge = make_challenge(tmp_path)
    path = challenge.folder / SETTINGS_FILE
    path.write_text(path.read_text() + "max_teams = 3\n")
    with pytest.raises(ChallengeError, match=r"challenge\.toml: unknown settings max_teams"):
        Challenge.open(challenge.folder)


def test_a_hostile_challenge_name_is_stored_and_read_back_as_plain_text(tmp_path: Path) -> None:
    challenge = make_challenge(tmp_path, name='Polyps "2026" \\ <b>\x1b[31m')
    assert read_settings(challenge.folder / SETTINGS_FILE).name == 'Polyps "2026" \\ <b>\\x1b[31m'


def test_team_add_prints_the_token_once_and_stores_only_a_salted_hash(tmp_path: Path) -> None:
    challenge = make_challenge(tmp_path)
    result = runner.invoke(app, ["challenge", "team", "add", "alpha", "--dir", str(challenge.folder)])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("mc_")
    secret = token.split("_", 2)[2]
    assert secret.encode() not in (challenge.folder / DATABASE_FILE).read_bytes()
    assert authenticate(challenge, token).name == "alpha"
    again = runner.invoke(app, ["challenge", "team", "add", "alpha", "--dir", str(challenge.folder)])
    assert again.exit_code == 2 and "already has a token" in _text(again)


def test_two_teams_never_share_a_salt(tmp_path: Path) -> None:
    challenge = make_challenge(tmp_path)
    for name in ("alpha", "beta"):
        runner.invoke(app, ["challenge", "team", "add", name, "--dir", str(challenge.folder)])
    with sqlite3.connect(challenge.folder / DATABASE_FILE) as connection:
        salts = [row[0] for row in connection.execute("SELECT salt FROM teams")]
    assert len(set(salts)) == 2 and all(len(salt) == 16 for salt in salts)


@pytest.mark.parametrize("name", ["<script>alert(1)</script>", "../etc", "a\u202eb", "", "x" * 65])
def test_team_names_pass_the_leaderboard_gate(tmp_path: Path, name: str) -> None:
    challenge = make_challenge(tmp_path)
    result = runner.invoke(app, ["challenge", "team", "add", name, "--dir", str(challenge.folder)])
    assert result.exit_code == 2
    assert "expected a plain name" in _text(result)


def test_a_revoked_token_stops_working_and_the_team_can_get_a_new_one(tmp_path: Path) -> None:
    challenge = make_challenge(tmp_path)
    folder = str(challenge.folder)
    old = runner.invoke(app, ["challenge", "team", "add", "alpha", "-d", folder]).stdout.strip()
    assert runner.invoke(app, ["challenge", "team", "revoke", "alpha", "-d", folder]).exit_code == 0
    assert authenticate(challenge, old) is None
    listed = runner.invoke(app, ["challenge", "team", "list", "-d", folder])
    added, revoked = (cell.strip() for cell in _text(listed).split("alpha")[1].split("│")[1:3])
    assert revoked != "-" and revoked >= added
    new = runner.invoke(app, ["challenge", "team", "add", "alpha", "-d", folder]).stdout.strip()
    assert authenticate(challenge, new).name == "alpha" and authenticate(challenge, old) is None
    missing = runner.invoke(app, ["challenge", "team", "revoke", "nobody", "-d", folder])
    assert missing.exit_code == 2 and "no team of that name" in _text(missing)


def test_close_switches_the_phase(tmp_path: Path) -> None:
    challenge = make_challenge(tmp_path)
    assert current_phase(challenge, datetime.now(timezone.utc)) == "open"
    result = runner.invoke(app, ["challenge", "close", str(challenge.folder)])
    assert result.exit_code == 0 and "private ranking" in _text(result)
    assert current_phase(challenge, datetime.now(timezone.utc)) == "closed"


def test_the_phase_follows_the_opening_and_closing_times(tmp_path: Path) -> None:
    opens, closes = datetime(2026, 12, 1, tzinfo=timezone.utc), datetime(2026, 12, 31, tzinfo=timezone.utc)
    challenge = make_challenge(tmp_path, opens=opens, closes=closes)
    assert current_phase(challenge, datetime(2026, 11, 30, tzinfo=timezone.utc)) == "before"
    assert current_phase(challenge, datetime(2026, 12, 15, tzinfo=timezone.utc)) == "open"
    assert current_phase(challenge, closes) == "closed"


def test_rescore_after_a_truth_fix_keeps_the_history(tmp_path: Path) -> None:
    from medico.challenge.submissions import add_submission
    from medico.challenge.teams import add_team

    challenge = make_challenge(tmp_path)
    add_team(challenge, "alpha", NOW)
    upload = perfect_archive(challenge.uploads / "incoming.zip")
    add_submission(challenge, team_of(challenge, "alpha"), upload, "f" * 64, NOW)
    assert drain(challenge) == 1
    unchanged = runner.invoke(app, ["challenge", "rescore", str(challenge.folder)])
    assert unchanged.exit_code == 0 and "nothing to re-score" in _text(unchanged)
    (challenge.settings.truth / "case0.png").write_bytes(mask_png(partial_mask()))  # the organiser fixes a mask
    with pytest.raises(TruthChangedError, match="rescore"):
        _requeue_and_score(challenge)
    result = runner.invoke(app, ["challenge", "rescore", str(challenge.folder)])
    assert result.exit_code == 0, result.output
    assert "scoring round 2: 1 submissions queued" in _text(result) and "1 submissions re-scored" in _text(result)
    with sqlite3.connect(challenge.folder / DATABASE_FILE) as connection:
        query = "SELECT round, iou FROM image_scores WHERE name = 'case0' ORDER BY round"
        rounds = connection.execute(query).fetchall()
    assert rounds[0] == (1, 1.0) and rounds[-1][0] == 2 and rounds[-1][1] < 1.0


def _requeue_and_score(challenge: Challenge) -> None:
    with challenge.database.write() as connection:
        connection.execute("UPDATE submissions SET state = 'queued'")
    score_next(challenge)


def test_a_database_from_a_newer_medico_is_refused(tmp_path: Path) -> None:
    challenge = make_challenge(tmp_path)
    with sqlite3.connect(challenge.folder / DATABASE_FILE) as connection:
        connection.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(ChallengeError, match="schema version 99"):
        Challenge.open(challenge.folder)


def test_settings_are_checked_when_made() -> None:
    with pytest.raises(ChallengeError, match="--name"):
        Settings(name="  ", truth=Path("t"), images=Path("i"))


def test_submissions_left_scoring_by_a_dead_worker_are_queued_again(tmp_path: Path) -> None:
    import subprocess
    import sys

    from medico.challenge.queue import claim_next, requeue_abandoned
    from medico.challenge.submissions import add_submission
    from medico.challenge.teams import add_team
    from medico.files import process_alive

    challenge = make_challenge(tmp_path)
    add_team(challenge, "alpha", NOW)
    for index in range(2):
        upload = perfect_archive(challenge.uploads / f"incoming{index}.zip")
        add_submission(challenge, team_of(challenge, "alpha"), upload, str(index) * 64, NOW)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    claim_next(challenge, worker=int(gone.stdout))  # its worker died while scoring it
    claim_next(challenge)  # this process: still scoring it
    assert requeue_abandoned(challenge, process_alive).queued == (1,)
    with challenge.database.read() as connection:
        states = [row[0] for row in connection.execute("SELECT state FROM submissions ORDER BY id")]
    assert states == ["queued", "scoring"]


def _edit_settings(challenge: Challenge, key: str, value: str) -> Path:
    """Set ``key = value`` (a TOML value) in the challenge's settings file, as an organiser editing it would."""
    path = challenge.folder / SETTINGS_FILE
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith(f"{key} =")]
    path.write_text("\n".join([*lines, f"{key} = {value}"]) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("key", ["truth", "images"])
@pytest.mark.parametrize("value", ['""', '"   "', "3"])
def test_a_blank_folder_setting_is_refused_never_read_as_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, value: str
) -> None:
    challenge = make_challenge(tmp_path)
    _edit_settings(challenge, key, value)
    monkeypatch.chdir(challenge.settings.truth)  # the current folder holds the very masks: it must not be read
    result = runner.invoke(app, ["serve", str(challenge.folder)])
    assert result.exit_code == 2
    assert f"{SETTINGS_FILE}: {key}: expected a folder, got" in _text(result) and len(result.output.splitlines()) == 1


def test_serve_refuses_a_truth_that_is_not_a_folder_or_missing_uploads(tmp_path: Path) -> None:
    challenge = make_challenge(tmp_path)
    _edit_settings(challenge, "truth", f'"{challenge.settings.truth / "case0.png"}"')
    result = runner.invoke(app, ["serve", str(challenge.folder)])
    assert result.exit_code == 2 and f"{SETTINGS_FILE}: truth " in _text(result) and "not a folder" in _text(result)
    _edit_settings(challenge, "truth", f'"{challenge.settings.truth}"')
    challenge.uploads.rmdir()
    result = runner.invoke(app, ["serve", str(challenge.folder)])
    assert result.exit_code == 2 and "uploads: missing or not a folder" in _text(result)


def test_a_relative_truth_in_the_settings_is_the_challenge_folders_wherever_the_server_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    challenge = make_challenge(tmp_path)
    _edit_settings(challenge, "truth", '"../data/truth"')
    monkeypatch.chdir(challenge.folder / "uploads")
    assert Challenge.open(challenge.folder).settings.truth.resolve() == challenge.settings.truth.resolve()


def test_a_settings_file_error_names_the_key_as_written_in_the_file(tmp_path: Path) -> None:
    challenge = make_challenge(tmp_path)
    path = _edit_settings(challenge, "max_total", "0")
    with pytest.raises(ChallengeError, match=r"challenge.toml: max_total: expected a whole number of at least 1"):
        read_settings(path)


def test_published_is_written_as_toml_and_read_back(tmp_path: Path) -> None:
    challenge = make_challenge(tmp_path, published=True)
    assert read_settings(challenge.folder / "challenge.toml").published is True
    (challenge.folder / "challenge.toml").write_text(
        (challenge.folder / "challenge.toml").read_text().replace("published = true", 'published = "yes"')
    )
    with pytest.raises(ChallengeError, match="published: expected true or false"):
        read_settings(challenge.folder / "challenge.toml")


@pytest.mark.parametrize(
    "command",
    [["serve", "{folder}"], ["challenge", "close", "{folder}"], ["challenge", "rescore", "{folder}"],
     ["challenge", "team", "list", "--dir", "{folder}"]],
    ids=["serve", "close", "rescore", "team-list"],
)
def test_a_settings_file_with_a_time_outside_utcs_range_is_refused_by_every_command_in_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    challenge = make_challenge(tmp_path)
    _edit_settings(challenge, "opens", "9999-12-31T23:59:59-23:59")  # 10000-01-01 in UTC: no datetime holds it
    result = runner.invoke(app, [part.format(folder=challenge.folder) for part in command])
    assert result.exit_code == 2 and len(result.output.splitlines()) == 1
    assert f"{SETTINGS_FILE}: opens 9999-12-31T23:59:59-23:59: expected a time between years 1" in _text(result)


@pytest.mark.parametrize("port", ["99999", "0", "-1", "65536"])
def test_serve_refuses_a_port_out_of_range_in_one_line(tmp_path: Path, port: str) -> None:
    challenge = make_challenge(tmp_path)
    result = runner.invoke(app, ["serve", str(challenge.folder), "--port", port])
    assert result.exit_code == 2 and len(result.output.splitlines()) == 1
    assert f"--port {port}: expected a port from 1 to 65535" in _text(result)


def test_serve_refuses_a_port_in_use_in_one_line(tmp_path: Path) -> None:
    challenge = make_challenge(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["serve", str(challenge.folder), "--port", str(port)])
    assert result.exit_code == 2 and len(result.output.splitlines()) == 1
    assert f"--port {port}: cannot listen on 127.0.0.1:{port}" in _text(result)


def test_init_per_image_before_close_turns_per_image_public_scores_on(tmp_path: Path) -> None:
    folder, result = _init(tmp_path, "--per-image-before-close")
    assert result.exit_code == 0, result.output
    assert read_settings(folder / "challenge.toml").per_image_before_close is True


def test_per_image_before_close_is_off_in_a_new_challenge_toml_and_must_be_true_or_false(tmp_path: Path) -> None:
    challenge = make_challenge(tmp_path)
    settings = challenge.folder / "challenge.toml"
    assert "per_image_before_close = false" in settings.read_text()  # the organiser sees it, and may turn it on
    settings.write_text(settings.read_text().replace("per_image_before_close = false", "per_image_before_close = 1"))
    with pytest.raises(ChallengeError, match="challenge.toml: per_image_before_close: expected true or false, got 1"):
        read_settings(settings)
