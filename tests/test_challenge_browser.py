"""A hosted challenge end to end as its users see it: the organiser's and two participants' real commands, each its
own process, and the leaderboard page read in headless Chromium (Debian's chromium, driven by playwright)."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from medico.challenge.app import create_app
from medico.challenge.database import DATABASE_FILE
from medico.challenge.folder import Challenge
from medico.challenge.partition import draw_partition
from medico.challenge.worker import drain
from medico.data.io import list_images, read_rgb
from medico.data.synthetic import synthetic_test_images
from medico.download import file_sha256
from medico.engine.evaluation import load_ensemble
from medico.submission import mask_png
from tests.challenge_setup import bearer, free_port, live_server, make_challenge, perfect_archive, tokens

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
HOSTILE = "<script>alert(1)</script>"
SEED = 0


def _medico(*arguments: str, cwd: Path, **options: Any) -> subprocess.CompletedProcess[str]:
    """``python -m medico ARGUMENTS`` in a process of its own, on this checkout's code; it must succeed."""
    done = subprocess.run(
        [sys.executable, "-m", "medico", *arguments], cwd=cwd, env=_environment(), text=True, timeout=300,
        stdout=options.pop("stdout", subprocess.PIPE), stderr=subprocess.PIPE, **options,
    )
    assert done.returncode == 0, f"medico {' '.join(arguments)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done


def _environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


@contextlib.contextmanager
def _serving(folder: Path, log: Path) -> Iterator[str]:
    """``medico serve FOLDER`` on a free loopback port, its output in ``log``; yields its address once it answers,
    and stops it (SIGTERM, as Ctrl+C would) whatever happens."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "medico", "serve", str(folder), "--port", str(port)],
            env=_environment(), stdout=output, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120  # a hung start fails the test instead of hanging it
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/api/leaderboard", timeout=5).status_code == 200:
                        break
                assert server.poll() is None, f"medico serve exited {server.returncode}:\n{log.read_text()}"
                assert time.monotonic() < deadline, f"medico serve did not answer:\n{log.read_text()}"
                time.sleep(0.1)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _masks(checkpoint: Path, images: Path) -> dict[str, np.ndarray]:
    """What ``medico submit --checkpoint CHECKPOINT`` predicts for ``images`` (on the CPU, in fp32)."""
    predictor, _ = load_ensemble([checkpoint], device="cpu", precision="fp32")
    paths = list_images(images)
    return {path.stem: mask for path, mask in zip(paths, predictor.predict_all((read_rgb(p) for p in paths), 8))}


def _truth_that_reorders(alpha: dict[str, np.ndarray], beta: dict[str, np.ndarray], truth: Path) -> None:
    """Masks in ``truth`` on which alpha's masks are perfect on the public images only and beta's on the private ones
    only: alpha leads the public ranking, beta the private one."""
    assert all(not np.array_equal(alpha[name], beta[name]) for name in alpha), "the two teams must predict differently"
    truth.mkdir()
    for name, part in draw_partition(alpha, 0.5, SEED).items():
        (truth / f"{name}.png").write_bytes(mask_png(alpha[name] if part == "public" else beta[name]))


def _page(chromium: Any, url: str) -> tuple[Any, list[str]]:
    """A new Chromium page on ``url``, and the messages of any dialog it opens (each dismissed)."""
    page = chromium.new_page()
    dialogs: list[str] = []

    def dismiss(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    page.goto(url)
    return page, dialogs


def _ranking(page: Any) -> list[tuple[str, str]]:
    """``(rank, team)`` of each row of the page's leaderboard table, top to bottom, as the browser renders them."""
    headers = page.locator("table.leaderboard thead th").all_inner_texts()
    rank, team = headers.index("rank"), headers.index("team")
    cells = [row.locator("td").all_inner_texts() for row in page.locator("table.leaderboard tbody tr").all()]
    return [(row[rank], row[team]) for row in cells]


def test_two_teams_submit_their_named_runs_and_the_page_shows_the_public_then_the_private_ranking(
    chromium: Any, run_dir: Path, workspace: Path
) -> None:
    """The README's walkthrough in a workspace that already holds a run (run 1, another model): each participant
    trains a quick run with --name and submits it by that name, and what the server scores is that run's masks."""
    images = workspace / "test-images"
    synthetic_test_images(images, count=4)
    best = {}
    for number, (team, seed) in enumerate((("alpha", "1"), ("beta", "2")), start=2):
        _medico("run", "unet", "--epochs", "1", "--input-size", "32", "--option", "init_features=4", "--seed", seed,
                "--name", f"{team}-quick", cwd=workspace)
        best[team] = workspace / "runs" / f"{number}-{team}-quick" / "checkpoints" / "best.pt"
    alpha, beta = _masks(best["alpha"], images), _masks(best["beta"], images)
    old = _masks(run_dir / "checkpoints" / "best.pt", images)
    assert all(not np.array_equal(old[name], alpha[name]) for name in old), "run 1 must predict otherwise"
    _truth_that_reorders(alpha, beta, workspace / "truth")
    folder = workspace / "polyps"
    _medico("challenge", "init", str(folder), "--truth", "truth", "--images", str(images), "--name", "Polyps",
            "--seed", str(SEED), cwd=workspace)
    for team in ("alpha", "beta"):
        with (workspace / f"{team}.token").open("w") as token:
            _medico("challenge", "team", "add", team, "--dir", str(folder), cwd=workspace, stdout=token)

    with _serving(folder, workspace / "serve.log") as url:
        for team in ("alpha", "beta"):
            said = _medico("submit", "--team", team, "--checkpoint", f"{team}-quick", "--images", str(images),
                           "--to", url, "--token-file", f"{team}.token", cwd=workspace).stdout
            assert f"{team}_task1_run1.zip uploaded as submission" in " ".join(said.split())
            manifest = json.loads((workspace / "submissions" / team / f"{team}_task1_run1.json").read_text())
            assert manifest["checkpoint_sha256"] == file_sha256(best[team])

        page, dialogs = _page(chromium, url)
        assert "public part" in page.locator("h1").inner_text()
        assert _ranking(page) == [("1", "alpha"), ("2", "beta")]

        _medico("challenge", "close", str(folder), cwd=workspace)
        page.reload()
        assert "final ranking, private part" in page.locator("h1").inner_text()
        # beta's masks are the private truth: no resample of the private images can put alpha first
        assert _ranking(page) == [("1 (1–1)", "beta"), ("2 (2–2)", "alpha")]
        screenshot = workspace / "leaderboard.png"
        page.screenshot(path=screenshot, full_page=True)
    assert dialogs == []
    with Image.open(screenshot) as shot:
        assert shot.format == "PNG" and shot.width >= 400 and len(shot.convert("L").getcolors(2**16) or ()) > 2


@contextlib.contextmanager
def _served_with_one_scored_upload(tmp_path: Path) -> Iterator[tuple[Challenge, str]]:
    """A served challenge (and its URL) where team alpha's perfect archive is scored."""
    challenge = make_challenge(tmp_path)
    token = tokens(challenge, ["alpha"], datetime.now(timezone.utc))["alpha"]
    with live_server(create_app(challenge.folder)) as url:
        upload = httpx.post(f"{url}/api/submissions", content=perfect_archive(tmp_path / "a.zip").read_bytes(),
                            headers=bearer(token), timeout=30)
        assert upload.status_code == 202, upload.text
        drain(challenge)
        yield challenge, url


def test_a_hostile_team_name_shows_as_text_in_the_browser_and_runs_nothing(chromium: Any, tmp_path: Path) -> None:
    with _served_with_one_scored_upload(tmp_path) as (challenge, url):
        with sqlite3.connect(challenge.folder / DATABASE_FILE) as connection:  # team add refuses it: written by hand
            connection.execute("UPDATE teams SET name = ? WHERE name = 'alpha'", (HOSTILE,))
        page, dialogs = _page(chromium, url)
        shown = _ranking(page)
        scripts = page.evaluate("Array.from(document.scripts, script => script.textContent)")
    assert shown == [("1", HOSTILE)]
    assert dialogs == []
    assert not any("alert(1)" in script for script in scripts)


def test_the_page_says_under_the_table_what_each_column_means_and_why_fps_reads_a_dash(
    chromium: Any, tmp_path: Path
) -> None:
    with _served_with_one_scored_upload(tmp_path) as (_, url):
        page, _ = _page(chromium, url)
        headers = page.locator("table.leaderboard thead th").all_inner_texts()
        [row] = [row.locator("td").all_inner_texts() for row in page.locator("table.leaderboard tbody tr").all()]
        legend = page.locator("dl.legend")
        terms, meanings = legend.locator("dt").all_inner_texts(), legend.locator("dd").all_inner_texts()
        table_bottom = page.locator("table.leaderboard").bounding_box()
        legend_top = legend.bounding_box()
    assert [row[headers.index(column)] for column in ("FPS", "at", "device")] == ["-", "-", "-"]
    assert terms == headers, "one line for each column, in the table's order"
    fps = meanings[terms.index("FPS")]
    assert "-: no speed measured (a scored archive holds masks only)" in fps
    assert legend_top["y"] >= table_bottom["y"] + table_bottom["height"], "under the table"
