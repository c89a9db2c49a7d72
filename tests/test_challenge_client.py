"""The participant's side of a hosted challenge, against the real server: ``medico submit --to`` asks the server first,
uploads and waits for the score, ``medico status`` tells the phase and lists the team's submissions; the token never
shows in what they print, and a server answering something else is a one-line error."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import urllib.request
import zipfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medico.challenge.app import create_app
from medico.challenge.client import ChallengeClient, ClientError, InvalidUploadError, read_token
from medico.challenge.folder import Challenge
from medico.challenge.phase import close_challenge
from medico.challenge.worker import drain
from medico.cli import app
from tests.challenge_setup import (
    NAMES,
    archive,
    live_server,
    make_challenge,
    partial_mask,
    perfect_archive,
    tokens,
    varied_archives,
)

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


@contextlib.contextmanager
def _serving(tmp_path: Path, **settings: object) -> Iterator[tuple[Challenge, str, Path]]:
    """A challenge with ``settings`` served with a worker, its URL, and team alpha's token file."""
    challenge = make_challenge(tmp_path, **settings)
    token_file = tmp_path / "alpha.token"
    token_file.write_text(tokens(challenge, ["alpha"], datetime.now(timezone.utc))["alpha"] + "\n")
    with live_server(create_app(challenge.folder)) as url, _scoring(challenge):
        yield challenge, url, token_file


@pytest.fixture
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Challenge, str, Path]]:
    """A served challenge with a worker, its URL, and team alpha's token file (showing the published figures when
    the test is parametrised with True)."""
    with _serving(tmp_path, max_per_day=3, published=getattr(request, "param", False)) as served:
        yield served


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


def test_submit_to_names_the_model_on_the_hosted_leaderboard(served, run_dir: Path) -> None:
    challenge, url, token_file = served
    command = ["submit", "--team", "alpha", "--checkpoint", str(run_dir), "--images", str(challenge.settings.images),
               "--tta", "flip", "--to", url, "--token-file", str(token_file)]
    assert runner.invoke(app, command).exit_code == 0
    with urllib.request.urlopen(f"{url}/api/leaderboard") as answer:
        assert [row["model"] for row in json.loads(answer.read())["rows"]] == ["unet (tta flip)"]


def test_status_lists_the_teams_submissions_and_uploads_left(served, tmp_path: Path) -> None:
    challenge, url, token_file = served
    from medico.commands.status import upload_and_wait

    upload_and_wait(url, token_file, perfect_archive(tmp_path / "a.zip"))
    result = runner.invoke(app, ["status", "--to", url, "--token-file", str(token_file)])
    assert result.exit_code == 0, result.output
    said = _text(result)
    assert "team alpha" in said and "scored" in said and "1.0000" in said
    assert "the challenge is open (no closing time)" in said
    assert "uploads: 2 left today, 4 left in total" in said


def test_after_close_status_says_so_offers_no_uploads_and_marks_the_submission_ranked(
    tmp_path: Path
) -> None:
    with _serving(tmp_path) as (challenge, url, token_file):
        from medico.commands.status import upload_and_wait

        upload_and_wait(url, token_file, archive(tmp_path / "worse.zip", {name: partial_mask() for name in NAMES}))
        upload_and_wait(url, token_file, perfect_archive(tmp_path / "a.zip"))
        closed = close_challenge(challenge, datetime.now(timezone.utc))
        result = runner.invoke(app, ["status", "--to", url, "--token-file", str(token_file)])
    assert result.exit_code == 0, result.output
    said = _text(result)
    assert f"the challenge is closed since {closed.isoformat()}" in said
    assert "uploads: none, the challenge is closed" in said and "left today" not in said
    assert "│ 1.0000 │ 1.0000 │ ranked │" in said and "ranked by submission 2 (its best public submission)" in said


def _submit_to(url: str, token_file: Path, run_dir: Path, images: Path) -> object:
    return runner.invoke(app, ["submit", "--team", "alpha", "--checkpoint", str(run_dir), "--images", str(images),
                               "--to", url, "--token-file", str(token_file)])


@pytest.mark.parametrize(
    ("settings", "before", "message"),
    [
        ({"opens": datetime(2099, 1, 1, tzinfo=timezone.utc)}, False,
         "the challenge is not open yet: it opens at 2099-01-01T00:00:00+00:00"),
        ({}, True, "the challenge is closed (since "),
        ({"max_per_day": 1}, False, "team alpha has no uploads left today: the next is allowed from "),
        ({"max_total": 1}, False, "team alpha has no uploads left: the total limit is reached"),
    ],
    ids=["not open yet", "closed", "none left today", "none left in total"],
)
def test_submit_to_asks_the_server_first_and_predicts_and_writes_nothing_it_would_refuse(
    tmp_path: Path, run_dir: Path, settings: dict, before: bool, message: str
) -> None:
    with _serving(tmp_path, **settings) as (challenge, url, token_file):
        if "max_per_day" in settings or "max_total" in settings:
            from medico.commands.status import upload_and_wait

            upload_and_wait(url, token_file, perfect_archive(tmp_path / "a.zip"))
        if before:
            close_challenge(challenge, datetime.now(timezone.utc))
        result = _submit_to(url, token_file, run_dir, challenge.settings.images)
    said = _text(result)
    assert result.exit_code == 2 and message in said and "nothing was predicted or written" in said
    assert len(result.output.strip().splitlines()) == 1
    assert said.count("T00:00:00+00:00") <= 1  # a time said once, not twice
    assert not (run_dir.parent.parent / "submissions").exists()


def test_a_refused_upload_states_when_the_next_is_allowed_once(tmp_path: Path) -> None:
    with _serving(tmp_path, max_per_day=1) as (_, url, token_file):
        client = ChallengeClient(url, read_token(token_file))
        client.upload(perfect_archive(tmp_path / "a.zip"))
        with pytest.raises(ClientError, match="429 no submissions left today") as refused:
            client.upload(varied_archives(tmp_path, 1)[0])
    assert str(refused.value).count("T00:00:00+00:00") == 1


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'{"team": 7, "left_today": null, "left_total": 3, "submissions": []}',
        b'{"team": "alpha", "left_today": null, "left_total": "3", "submissions": []}',
        b'{"team": "alpha", "left_today": null, "left_total": 3, "submissions": [1]}',
        b'{"team": "alpha", "left_today": null, "left_total": 3, "phase": "later", "submissions": []}',
        b'{"team": "alpha", "left_today": null, "left_total": 3, "submissions": [{"id": 1, "state": "scored", '
        b'"received": "now", "selected": false, "scores": {"public": {"iou": "high"}}}]}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"team": "alpha", "left_today": null, "left_total": 3, "submissions": [' + b"0," * 9_000_000 + b"0]}",
    ],
    ids=["a list", "a number for a name", "text for a count", "a number for a submission", "an unknown phase",
         "text for a score", "nested too deep", "too large to read"],
)
def test_a_server_answering_json_of_another_shape_is_a_one_line_error(tmp_path: Path, body: bytes) -> None:
    token_file = tmp_path / "t.token"
    token_file.write_text("mc_1_x")
    with _answering(body) as url:
        result = runner.invoke(app, ["status", "--to", url, "--token-file", str(token_file)])
    assert result.exit_code == 2 and "medico challenge server" in _text(result), result.output
    assert len(result.output.strip().splitlines()) == 1 and url in _text(result)


@contextlib.contextmanager
def _answering(body: bytes) -> Iterator[str]:
    """A server answering every GET with ``body`` as JSON; yields its URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


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


def test_submitting_the_same_masks_again_uploads_the_archive_already_written(served, run_dir: Path) -> None:
    """A repeated `submit --to` (an upload cut off, a second terminal) sends the run already written: no new local run
    is spent, and the server counts the same archive once."""
    challenge, url, token_file = served
    command = ["submit", "--team", "alpha", "--checkpoint", str(run_dir), "--images", str(challenge.settings.images),
               "--to", url, "--token-file", str(token_file)]
    assert runner.invoke(app, command).exit_code == 0
    again = runner.invoke(app, command)
    assert again.exit_code == 0, again.output
    said = _text(again)
    assert "alpha_task1_run1.zip already holds these masks: uploading it" in said
    assert "alpha_task1_run1.zip already uploaded as submission 1" in said
    assert sorted(p.name for p in (Path("submissions") / "alpha").iterdir()) == ["alpha_task1_run1.json",
                                                                                 "alpha_task1_run1.zip"]


def test_an_uploaded_model_name_never_carries_the_folders_of_a_file_plugin(served, tmp_path: Path) -> None:
    """The hosted page is public: `/home/me/My Nets/x.py:build` is shown as `x.py:build`."""
    challenge, url, token_file = served
    from medico.commands.status import upload_and_wait

    upload_and_wait(url, token_file, perfect_archive(tmp_path / "a.zip"), "/home/me/My Nets/x.py:build (tta flip)")
    with urllib.request.urlopen(f"{url}/api/leaderboard") as answer:
        assert [row["model"] for row in json.loads(answer.read())["rows"]] == ["x.py:build (tta flip)"]
