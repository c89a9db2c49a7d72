"""Participant text (team names, a manifest's model, notes, labels) never reaches the organiser's terminal, spreadsheet
or page raw: a hostile team name is refused where it enters, any other text is shown with its control, format and
bidi characters written as visible escapes, and cut short when long."""

from __future__ import annotations

import json
import sqlite3
import unicodedata
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from medico.cli import app
from medico.errors import MedicoError
from medico.leaderboard import Entry, LeaderboardStore
from medico.runs.config import RunConfig, RunOptions, read_layer
from tests.hostile._archives import perfect_archive

WIDE = {"COLUMNS": "220"}
LONG = "x" * 100_000
HOSTILE = {
    "csi": "\x1b[2J\x1b[31mred",
    "osc8": "\x1b]8;;https://evil.example\x1b\\click me\x1b]8;;\x1b\\",
    "bidi": "team\u202eexe.txt",
    "isolate": "a\u2067b\u2069c",
    "zero-width": "j\u200do\u200bin",
    "nul": "a\x00b",
    "newlines": "line\nbreak\rreturn\u2028sep",
    "long": LONG,
}
FORMATS = ("table", "csv", "markdown", "json", "html")
CAP = 1_000
"""No cell may hold more than this many characters of a participant's text."""


def _raw(text: str) -> list[str]:
    """Characters a terminal or a page acts on or hides: controls (bar the newlines that end output lines), format
    characters (bidi overrides and isolates, zero-width joiners), line/paragraph separators and surrogates."""
    return sorted({c for c in text if c != "\n" and unicodedata.category(c) in {"Cc", "Cf", "Cs", "Zl", "Zp"}})


def _board(fmt: str, *options: str) -> str:
    result = CliRunner().invoke(app, ["leaderboard", "--all-runs", "--with-published", "--format", fmt, *options],
                                env=WIDE)
    assert result.exit_code == 0, result.output
    return result.stdout


def _assert_safe(output: str) -> None:
    assert _raw(output) == [], f"raw characters reached the output: {_raw(output)}"
    assert "x" * (CAP + 1) not in output, "a 100 kB text reached the output uncut"


@pytest.mark.parametrize("team", [HOSTILE["csi"], HOSTILE["bidi"]], ids=["csi", "bidi"])
def test_medico_run_refuses_a_hostile_team_before_training(small_data: Path, team: str) -> None:
    result = CliRunner().invoke(app, ["run", "unet", "--option", "init_features=4", "--input-size", "32",
                                      "--epochs", "1", "--team", team], env=WIDE)
    assert result.exit_code == 2, result.output
    assert "team" in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "epoch" not in result.stdout, "refused before any training"
    assert not list((small_data / "runs").glob("*/checkpoints")), "no run was trained"
    assert LeaderboardStore().entries() == []


def test_a_team_from_a_config_file_or_a_resumed_run_is_refused_too(tmp_path: Path) -> None:
    config = tmp_path / "hostile.toml"
    config.write_text('team = "\\u001b[31mred"\n', encoding="utf-8")
    with pytest.raises(MedicoError, match="team"):
        read_layer(config)
    with pytest.raises(MedicoError, match="team"):
        RunConfig(model="unet").with_resume_overrides(RunOptions(team=HOSTILE["bidi"]))


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_an_entry_refuses_a_hostile_team_and_neutralises_every_other_text(text: str) -> None:
    with pytest.raises(MedicoError, match="team"):
        Entry(team=text, model="unet")
    entry = Entry(team="plain", model=text, note=text, dataset=text, fps_device=text, citation=text)
    for value in (entry.model, entry.note, entry.dataset, entry.fps_device, entry.citation):
        assert _raw(value) == [] and len(value) <= CAP


def test_rows_an_older_medico_stored_raw_reach_no_output_raw(workspace: Path) -> None:
    """Rows written by a medico whose `run --team` skipped the check, read back and shown in every format."""
    store = LeaderboardStore()
    markup = "[link=https://evil.example]m[/link]"
    store.add(Entry(team="[bold red]x", model=markup, run=1, iou=0.5, dice=0.6))
    columns = "team, model, task, split, run, dice, iou, metric_policy, source, created, note, dataset, fps, fps_device"
    with sqlite3.connect(store.path) as connection:
        for index, text in enumerate(HOSTILE.values()):
            connection.execute(
                f"INSERT INTO entries ({columns}) VALUES (?, ?, 'segmentation', 'val', ?, 0.7, 0.6, '{{}}', "
                "'measured', '2020-12-01T00:00:00+00:00', ?, ?, 50.0, ?)",
                (text, text, index + 1, text, text, text),
            )
    for fmt in FORMATS:
        _assert_safe(_board(fmt))
    exported = _board("csv")
    assert "red" in exported and "click me" in exported and "exe.txt" in exported, "the names are still shown"
    table = _board("table", "--model", markup)
    assert "[bold red]x" in table and markup in table, "rich markup shows literally"


def test_a_hostile_model_in_a_submission_manifest_reaches_no_output_raw(workspace: Path) -> None:
    archive, truth = perfect_archive(workspace)
    model = HOSTILE["osc8"] + HOSTILE["bidi"] + HOSTILE["zero-width"] + LONG
    archive.with_suffix(".json").write_text(json.dumps({"model": model}), encoding="utf-8")
    result = CliRunner().invoke(app, ["score", str(archive), "--truth", str(truth), "--team", "T"])
    assert result.exit_code == 0, result.output
    for fmt in FORMATS:
        _assert_safe(_board(fmt))
    summary = json.loads(archive.with_name(f"{archive.stem}_summary.json").read_text(encoding="utf-8"))
    assert _raw(summary["model"]) == [] and len(summary["model"]) <= CAP
    assert summary["model"] == LeaderboardStore().entries()[0].model, "the record says what the leaderboard shows"


@pytest.mark.parametrize("name", ["csi", "osc8", "bidi", "newlines"])
def test_an_error_naming_a_hostile_file_shows_the_name_neutralised(workspace: Path, name: str) -> None:
    archive = workspace / f"{HOSTILE[name]}.zip".replace("\x00", "")
    (workspace / "images").mkdir()
    Image.new("RGB", (4, 4)).save(workspace / "images" / "a.jpg")
    result = CliRunner().invoke(app, ["validate", str(archive), "--images", str(workspace / "images")], env=WIDE)
    assert result.exit_code == 2 and "error:" in result.output
    _assert_safe(result.output)
