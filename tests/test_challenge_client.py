"""The participant's side of a hosted challenge, against the real server: ``medico submit --to`` uploads and waits for
the score, ``medico status`` lists the team's submissions; the token never shows in what they print."""

from __future__ import annotations

import contextlib
import threading
import zipfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medico.challenge.app import create_app
from medico.challenge.client import InvalidUploadError
from medico.challenge.folder import Challenge
from medico.challenge.worker import drain
from medico.cli import app
from tests.challenge_setup import live_server, make_challenge, perfect_archive, tokens

runner = CliRunner()


def _text(result: object) -> str:
    return " ".join(result.output.split())  # type: ignore[attr-defined]


@contextlib.contextmanager
def _scoring(challenge: Challenge) -> Iterator[None]:
    """A worker in a thread of the test (the server's own worker is a process, tested in test_challenge_server)."""
    stop = threading.Event()

    def work() -> None:
        while not stop.wait(0.05):
            drain(challenge)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


@pytest.fixture
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Challenge, str, Path]]:
    """A served challenge with a worker, its URL, and team alpha's token file (showing the published figures when
    the test is parametrised with True)."""
    challenge = make_challenge(tmp_path, max_per_day=3, published=getattr(request, "param", False))
    token_file = tmp_path / "alpha.token"
    token_file.write_text(tokens(challenge, ["alpha"], datetime.now(timezone.utc))["alpha"] + "\n")
    with live_server(create_app(challenge.folder)) as url, _scoring(challenge):
        yield challenge, url, token_file


@pytest.mark.parametrize("served", [False, True], indirect=True, ids=["teams", "with-published"])
def test_submit_to_a_server_uploads_waits_and_prints_the_public_rank(served, run_dir: Path) -> None:
    challenge, url, token_file = served
    command = ["submit", "--team", "alpha", "--checkpoint", str(run_dir), "--images", str(challenge.settings.images),
               "--to", url, "--token-file", str(token_file)]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    said = _text(result)
    assert "alpha_task1_run1.zip uploaded as submission 1" in said
    assert "submission 1 scored: public mIoU" in said and "team alpha ranks 1 of 1 on the public leaderboard" in said
    assert token_file.read_text().strip() not in result.output


def test_status_lists_the_teams_submissions_and_uploads_left(served, tmp_path: Path) -> None:
    challenge, url, token_file = served
    from medico.commands.status import upload_and_wait

    upload_and_wait(url, token_file, perfect_archive(tmp_path / "a.zip"))
    result = runner.invoke(app, ["status", "--to", url, "--token-file", str(token_file)])
    assert result.exit_code == 0, result.output
    said = _text(result)
    assert "team alpha" in said and "scored" in said and "1.0000" in said
    assert "uploads: 2 left today, 4 left in total" in said


def test_an_invalid_upload_prints_the_validators_messages_and_exits_1(served, tmp_path: Path) -> None:
    _, url, token_file = served
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as handle:
        handle.writestr("case0.png", b"not a png")
    from medico.commands.status import upload_and_wait

    with pytest.raises(InvalidUploadError, match="submission 1 is invalid") as raised:
        upload_and_wait(url, token_file, broken)
    assert raised.value.exit_code == 1


def test_a_wrong_token_is_a_one_line_error_that_does_not_repeat_it(served, tmp_path: Path) -> None:
    _, url, _ = served
    wrong = tmp_path / "wrong.token"
    wrong.write_text("mc_0000000000000000_not-our-secret")
    result = runner.invoke(app, ["status", "--to", url, "--token-file", str(wrong)])
    assert result.exit_code == 2
    assert "401 missing or invalid token" in _text(result) and "not-our-secret" not in result.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--to", "ftp://example.org"], "expected the server's http:// or https:// address"),
        (["--to", "http://127.0.0.1:9"], "cannot reach the server"),
    ],
)
def test_bad_addresses_are_one_line_errors(tmp_path: Path, arguments: list[str], message: str) -> None:
    token_file = tmp_path / "t.token"
    token_file.write_text("mc_1_x")
    result = runner.invoke(app, ["status", *arguments, "--token-file", str(token_file)])
    assert result.exit_code == 2 and message in _text(result)


def test_a_missing_token_file_is_a_one_line_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["status", "--to", "http://127.0.0.1:9", "--token-file", str(tmp_path / "none")])
    assert result.exit_code == 2 and "--token-file" in _text(result)


def test_submit_to_needs_a_token_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["submit", "--team", "alpha", "--to", "http://127.0.0.1:9"])
    assert result.exit_code == 2 and "--to and --token-file go together" in _text(result)
