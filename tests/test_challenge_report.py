"""The organiser's report (``medico challenge report``): only after the close unless previewed, never over a file
without --force, the same numbers for the same database and seed, and a page that opens in Chromium with every
figure and nothing run."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from medico.challenge.app import create_app
from medico.challenge.database import DATABASE_FILE
from medico.challenge.folder import Challenge
from medico.challenge.phase import close_challenge
from medico.challenge.report.methods import METHODS, ranks_by_method
from medico.challenge.standings import standings
from medico.challenge.submissions import add_submission
from medico.challenge.worker import drain
from medico.cli import app
from tests.challenge_setup import (
    bearer,
    live_server,
    make_challenge,
    perfect_archive,
    private_partial_archive,
    team_of,
    tokens,
    varied_archives,
)

HOSTILE = "<svg onload=alert(1)>$x^2$"
FIGURES = ("ranking", "blobs", "kendall", "significance", "methods", "per_image")


def _scored(tmp_path: Path) -> Challenge:
    """A challenge where three teams each have a scored submission (alpha perfect, beta perfect in public only, gamma
    one pixel off), not closed."""
    challenge = make_challenge(tmp_path)
    now = datetime.now(timezone.utc)
    tokens(challenge, ["alpha", "beta", "gamma"], now)
    archives = {
        "alpha": perfect_archive(tmp_path / "a.zip"),
        "beta": private_partial_archive(challenge, tmp_path / "b.zip"),
        "gamma": varied_archives(tmp_path, 2)[1],
    }
    for team, archive in archives.items():
        add_submission(challenge, team_of(challenge, team), archive, "f" * 64, now)
    assert drain(challenge) == 3
    return challenge


def _report(*arguments: str) -> Any:
    return CliRunner().invoke(app, ["challenge", "report", *arguments])


def test_the_report_is_refused_before_the_close_unless_previewed(tmp_path: Path) -> None:
    challenge = _scored(tmp_path)
    out = tmp_path / "report.html"
    refused = _report(str(challenge.folder), "--out", str(out))
    assert refused.exit_code != 0
    said = " ".join(refused.output.split())
    assert "the challenge is open" in said and "private scores" in said and "--preview" in said
    assert not out.exists()
    previewed = _report(str(challenge.folder), "--out", str(out), "--preview")
    assert previewed.exit_code == 0, previewed.output
    assert "Do not publish it" in out.read_text() and "preview" in previewed.output
    as_json = _report(str(challenge.folder), "--out", str(tmp_path / "r.json"), "--format", "json", "--preview")
    assert as_json.exit_code == 0 and json.loads((tmp_path / "r.json").read_text())["preview"] is True


def test_an_existing_out_file_is_kept_without_force_and_replaced_with_it(tmp_path: Path) -> None:
    challenge = _scored(tmp_path)
    close_challenge(challenge, datetime.now(timezone.utc))
    out = tmp_path / "report.html"
    out.write_text("the organiser's notes")
    kept = _report(str(challenge.folder), "--out", str(out))
    assert kept.exit_code != 0 and "already exists; pass --force to replace it" in " ".join(kept.output.split())
    assert out.read_text() == "the organiser's notes"
    replaced = _report(str(challenge.folder), "--out", str(out), "--force")
    assert replaced.exit_code == 0, replaced.output
    assert out.read_text().startswith("<!DOCTYPE html>")


def test_the_same_database_and_seed_give_the_same_report_whose_numbers_agree_with_the_leaderboard(
    tmp_path: Path,
) -> None:
    challenge = _scored(tmp_path)
    close_challenge(challenge, datetime.now(timezone.utc))
    for name, options in (("a.json", []), ("b.json", []), ("c.json", ["--seed", "5"]), ("a.html", []),
                          ("b.html", [])):
        fmt = ["--format", "json"] if name.endswith(".json") else []
        done = _report(str(challenge.folder), "--out", str(tmp_path / name), "--resamples", "200", *fmt, *options)
        assert done.exit_code == 0, done.output
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert (tmp_path / "a.html").read_bytes() == (tmp_path / "b.html").read_bytes()
    numbers = json.loads((tmp_path / "a.json").read_text())
    reseeded = json.loads((tmp_path / "c.json").read_text())
    assert numbers["bootstrap"] == {"resamples": 200, "seed": 0, "confidence": 0.95,
                                    "images": "the 2 private images, with replacement"}
    assert reseeded["bootstrap"]["seed"] == 5
    board = standings(challenge, "closed")
    assert [(team["rank"], team["team"]) for team in numbers["teams"]] == [
        (row.rank, row.entry.team) for row in board.rows
    ]
    assert numbers["teams"][0]["team"] == "alpha" and numbers["teams"][0]["miou_interval"] == [1.0, 1.0]
    assert all(len(team["per_image_iou"]) == 2 for team in numbers["teams"])
    assert numbers["significance"]["teams"] == [team["team"] for team in numbers["teams"]]
    assert numbers["design"]["test set"] == {"images": 4, "public images": 2, "private images": 2,
                                             "public fraction": 0.5, "partition seed": 0}
    assert "both empty" in numbers["design"]["ranking"]["empty masks"]


def test_with_the_default_seed_and_resamples_the_report_gives_the_leaderboards_rank_intervals(tmp_path: Path) -> None:
    challenge = _scored(tmp_path)
    close_challenge(challenge, datetime.now(timezone.utc))
    done = _report(str(challenge.folder), "--out", str(tmp_path / "r.json"), "--format", "json")
    assert done.exit_code == 0, done.output
    teams = json.loads((tmp_path / "r.json").read_text())["teams"]
    board = standings(challenge, "closed").records()["rows"]
    assert [team["rank_interval"] for team in teams] == [row["rank_interval"] for row in board]


def test_the_ranking_method_decides_between_a_steady_team_and_one_that_fails_on_one_image() -> None:
    iou = np.array([[0.9, 0.9, 0.9, 0.0], [0.8, 0.8, 0.8, 0.8]])  # mean 0.675 vs 0.8; better on 3 images of 4
    methods = ranks_by_method(iou, 2 * iou / (1 + iou), final=[2, 1], test_then_rank=[1, 1])
    assert set(methods) == set(METHODS)
    assert methods["mean mIoU"] == [2, 1] and methods["mean Dice"] == [2, 1]
    assert methods["median mIoU"] == [1, 2] and methods["rank then mean"] == [1, 2]
    assert methods["test then rank"] == [1, 1]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--format", "pdf"], "--format: expected one of html, json, got 'pdf'"),
        (["--resamples", "0"], "--resamples: expected a whole number from 1 to 100,000, got 0"),
    ],
)
def test_a_bad_option_is_a_one_line_error(tmp_path: Path, options: list[str], message: str) -> None:
    challenge = _scored(tmp_path)
    close_challenge(challenge, datetime.now(timezone.utc))
    done = _report(str(challenge.folder), "--out", str(tmp_path / "r.out"), *options)
    assert done.exit_code != 0 and message in " ".join(done.output.split())
    assert not (tmp_path / "r.out").exists()


def test_a_challenge_that_nobody_scored_in_has_no_report(tmp_path: Path) -> None:
    challenge = make_challenge(tmp_path)
    close_challenge(challenge, datetime.now(timezone.utc))
    done = _report(str(challenge.folder), "--out", str(tmp_path / "r.html"))
    assert done.exit_code != 0 and "no team has a scored submission" in " ".join(done.output.split())


def test_a_hand_edited_per_image_score_is_refused_naming_the_database(tmp_path: Path) -> None:
    challenge = _scored(tmp_path)
    close_challenge(challenge, datetime.now(timezone.utc))
    with sqlite3.connect(challenge.folder / DATABASE_FILE) as connection:
        connection.execute("UPDATE image_scores SET iou = 1.5 WHERE submission_id = 2")
    done = _report(str(challenge.folder), "--out", str(tmp_path / "r.html"))
    said = " ".join(done.output.split())
    assert done.exit_code != 0 and DATABASE_FILE in said and "submission 2: a per-image score 1.5" in said


@pytest.mark.browser
def test_the_report_of_a_served_then_closed_challenge_opens_in_chromium_with_every_figure(
    chromium: Any, tmp_path: Path
) -> None:
    challenge = make_challenge(tmp_path)
    keys = tokens(challenge, ["alpha", "beta", "gamma"], datetime.now(timezone.utc))
    archives = {"alpha": perfect_archive(tmp_path / "a.zip"),
                "beta": private_partial_archive(challenge, tmp_path / "b.zip"),
                "gamma": varied_archives(tmp_path, 3)[2]}
    with live_server(create_app(challenge.folder)) as url:
        for team, archive in archives.items():
            sent = httpx.post(f"{url}/api/submissions", content=archive.read_bytes(), headers=bearer(keys[team]),
                              timeout=30)
            assert sent.status_code == 202, sent.text
        drain(challenge)
        with sqlite3.connect(challenge.folder / DATABASE_FILE) as connection:  # team add refuses it: written by hand
            connection.execute("UPDATE teams SET name = ? WHERE name = 'gamma'", (HOSTILE,))
        close_challenge(challenge, datetime.now(timezone.utc) - timedelta(seconds=1))
        out = challenge.folder / "report.html"
        done = _report(str(challenge.folder), "--out", str(out))
        assert done.exit_code == 0, done.output
        assert httpx.get(f"{url}/report.html", timeout=30).status_code == 404, "the server never serves the report"

    page = chromium.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(f"{message.type}: {message.text}")
            if message.type in ("error", "warning") else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    page.goto(out.as_uri())
    assert "final report" in page.locator("h1").inner_text()
    for name in FIGURES:
        figure = page.locator(f"figure#figure-{name} svg")
        assert figure.count() == 1, name
        box = figure.bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 100, name
        assert figure.locator("path, use, rect").count() > 5, name
    ranking = page.locator("table").filter(has_text="95% rank interval").first
    assert HOSTILE in ranking.inner_text()  # the name as text, in the table
    assert page.evaluate("document.images.length") == 0 and page.evaluate("document.scripts.length") == 0
    assert page.locator("figure#figure-ranking svg text").filter(has_text="x^2").count() >= 1  # not mathtext
    assert problems == []
