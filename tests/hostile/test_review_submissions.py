"""Review of the organiser's side against a hostile participant: archives that would exhaust memory are refused
unread, member names and manifests reach no output raw and no other file, one archive counts for one team and one
run, names that only look alike are refused, and a leaderboard row no medico wrote is a message, not a traceback."""

from __future__ import annotations

import bz2
import json
import lzma
import os
import re
import sqlite3
import struct
import tracemalloc
import unicodedata
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medico.cli import app
from medico.leaderboard import LeaderboardStore
from medico.submission import dockerfile, image_sizes, validate_archive
from tests.hostile._archives import perfect_archive

WIDE = {"COLUMNS": "220"}
BOMB_BYTES = 32 * 2**20
"""What a bomb member expands to: enough to see in memory, small enough for a fast test on the old code."""


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], env=WIDE)


def one_line_error(result, *words: str) -> None:
    """One message (however the terminal wraps it), exit code 2, naming each of ``words``."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stderr.startswith("error:"), result.output
    assert result.stderr.count("error:") == 1, result.stderr
    unwrapped = "".join(result.stderr.split())
    for word in words:
        assert "".join(word.split()) in unwrapped, result.stderr


def raw(text: str) -> list[str]:
    """Characters a terminal acts on or hides (controls bar newlines, bidi and zero-width characters)."""
    return sorted({c for c in text if c != "\n" and unicodedata.category(c) in {"Cc", "Cf", "Cs", "Zl", "Zp"}})


def peak_bytes(call) -> int:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _bomb(method: int, payload: bytes) -> bytes:
    """``payload`` then zeros up to :data:`BOMB_BYTES`, compressed by ``method`` (bzip2 or LZMA as zip stores it)."""
    zeros = b"\0" * (BOMB_BYTES - len(payload))
    if method == zipfile.ZIP_BZIP2:
        return bz2.compress(payload + zeros, 1)
    filters = [{"id": lzma.FILTER_LZMA1, "preset": 0}]
    properties = lzma._encode_filter_properties(filters[0])  # zip's LZMA header: version, size, properties
    return struct.pack("<BBH", 9, 4, len(properties)) + properties + lzma.compress(
        payload + zeros, format=lzma.FORMAT_RAW, filters=filters
    )


def _lying_archive(path: Path, members: dict[str, bytes], method: int) -> Path:
    """A zip whose members are compressed bombs that declare their payload's honest-looking size."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, payload in members.items():
            archive.writestr(zipfile.ZipInfo(name), _bomb(method, payload))  # stored, then relabelled below
    data = bytearray(path.read_bytes())
    for signature, method_at, size_at in ((b"PK\x03\x04", 8, 22), (b"PK\x01\x02", 10, 24)):
        for match, payload in zip(re.finditer(re.escape(signature), bytes(data)), members.values()):
            struct.pack_into("<H", data, match.start() + method_at, method)
            struct.pack_into("<I", data, match.start() + size_at, len(payload))
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA], ids=["bzip2", "lzma"])
def test_a_compressed_bomb_that_lies_about_its_size_is_refused_unread(tmp_path: Path, method: int) -> None:
    archive, truth = perfect_archive(tmp_path)
    with zipfile.ZipFile(archive) as handle:
        masks = {name: handle.read(name) for name in handle.namelist()}
    bomb = _lying_archive(tmp_path / "bomb.zip", masks, method)
    reports = []
    peak = peak_bytes(lambda: reports.append(validate_archive(bomb, image_sizes(truth))))
    assert peak < BOMB_BYTES // 4, f"validating a {bomb.stat().st_size:,}-byte archive took {peak:,} bytes"
    (report,) = reports
    assert not report.ok and {p.rule for p in report.problems} == {"unreadable"}
    assert all(zipfile.compressor_names[method] in p.detail for p in report.problems), report.problems


def _directory_only(path: Path, entries: int) -> Path:
    """A zip of ``entries`` central-directory records and no data: a few MB that zipfile turns into objects."""
    record = struct.Struct("<4s4B4HL2L5H2L")
    names = (b"%08d.png" % i for i in range(entries))
    directory = b"".join(
        record.pack(b"PK\x01\x02", 20, 3, 20, 0, 0, 0, 0, 0, 0, 0, 0, 12, 0, 0, 0, 0, 0o100644 << 16, 0) + name
        for name in names
    )
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, len(directory), 0, 0)
    path.write_bytes(directory + end)
    return path


def test_a_central_directory_of_a_million_tiny_entries_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    _, truth = perfect_archive(tmp_path)
    archive = _directory_only(tmp_path / "many.zip", 200_000)  # 11.6 MB here; 256 MB hold 4.6 million (2.7 GB)
    reports = []
    peak = peak_bytes(lambda: reports.append(validate_archive(archive, image_sizes(truth))))
    assert peak < 32 * 2**20, f"a {archive.stat().st_size:,}-byte directory took {peak:,} bytes to refuse"
    assert [p.rule for p in reports[0].problems] == ["too_many"]


HOSTILE_NAMES = ["\x1b]0;owned\x07\x1b[2Jcase9.png", "case8\u202egnp.exe", "__MACOSX/\x1b[5mblink", "x" * 20_000]


@pytest.mark.parametrize("command", ["validate", "score"])
def test_member_names_reach_the_organisers_terminal_neutralised(workspace: Path, command: str) -> None:
    archive, truth = perfect_archive(workspace)
    with zipfile.ZipFile(archive, "a") as handle:
        for name in HOSTILE_NAMES:
            handle.writestr(name, b"not a mask")
    options = ["--images", truth] if command == "validate" else ["--truth", truth, "--team", "T"]
    result = invoke(command, archive, *options)
    assert result.exit_code == 1, result.output
    assert raw(result.output) == [], f"raw characters reached the terminal: {raw(result.output)}"
    assert "x" * 1_000 not in result.output, "a 20,000-character name reached the terminal uncut"
    assert "\\x1b" in result.output and "\\u202e" in result.output, "the names are still shown, as escapes"


def _score(archive: Path, truth: Path, team: str = "T", *more: object):
    return invoke("score", archive, "--truth", truth, "--team", team, *more)


def test_a_manifest_that_links_to_another_file_puts_none_of_it_on_the_leaderboard(workspace: Path) -> None:
    archive, truth = perfect_archive(workspace)
    secret = workspace / "organiser" / "credentials.json"
    secret.parent.mkdir()
    secret.write_text(json.dumps({"model": "the organiser's API token"}))
    os.symlink(secret, archive.with_suffix(".json"))
    assert _score(archive, truth).exit_code == 0
    (entry,) = LeaderboardStore().entries()
    assert entry.model == "submission"


def test_a_deeply_nested_manifest_is_ignored_not_a_traceback(workspace: Path) -> None:
    archive, truth = perfect_archive(workspace)
    archive.with_suffix(".json").write_text("[" * 200_000)
    result = _score(archive, truth)
    assert result.exit_code == 0, result.output
    assert [e.model for e in LeaderboardStore().entries()] == ["submission"]


def test_one_archive_cannot_count_for_a_second_team(workspace: Path) -> None:
    archive, truth = perfect_archive(workspace)
    assert _score(archive, truth, "Polypers").exit_code == 0
    summary = archive.with_name(f"{archive.stem}_summary.json")
    first = summary.read_text()
    one_line_error(_score(archive, truth, "Copycats"), "Polypers", "Copycats")
    assert [e.team for e in LeaderboardStore().entries()] == ["Polypers"]
    assert summary.read_text() == first, "the results beside the archive still name the team that has the entry"


def test_an_archive_replaced_under_the_same_run_is_refused_not_a_second_chance(workspace: Path) -> None:
    archive, truth = perfect_archive(workspace)
    assert _score(archive, truth).exit_code == 0
    with zipfile.ZipFile(archive, "a") as handle:  # other bytes, same name: the participant's second try
        handle.writestr("__MACOSX/._case0.png", b"")
    one_line_error(_score(archive, truth), "run 1", "--run")
    assert len(LeaderboardStore().entries()) == 1
    assert _score(archive, truth, "T", "--run", "2").exit_code == 0, "a free run number is the way to record it"


@pytest.mark.parametrize(
    "team", ["\uff34\uff45\uff41\uff4d", "Team\u00a0A", "Cafe\u0301", "\ufb01sh"],
    ids=["full-width", "no-break-space", "decomposed", "ligature"],
)
def test_a_team_name_that_only_looks_like_another_is_refused(workspace: Path, team: str) -> None:
    archive, truth = perfect_archive(workspace)
    one_line_error(_score(archive, truth, team), "--team")
    assert LeaderboardStore().entries() == []


def _tag(team: str) -> str:
    return re.search(r"docker build -t (\S+) \.", dockerfile(team, 1, "0" * 64)).group(1)


def test_two_teams_whose_names_spell_alike_get_different_docker_images() -> None:
    tags = {_tag(team) for team in ("Team A", "team-a", "TEAM A", "team a")}
    assert len(tags) == 4, f"one image tag would hold several teams' containers: {tags}"


@pytest.mark.parametrize(
    ("column", "value"), [("metric_policy", "'not json'"), ("iou", "'abc'"), ("team", "NULL")]
)
def test_a_leaderboard_row_no_medico_wrote_is_one_line_naming_the_file(
    workspace: Path, column: str, value: str
) -> None:
    archive, truth = perfect_archive(workspace)
    assert _score(archive, truth).exit_code == 0
    database = workspace / "crafted.sqlite"
    with sqlite3.connect(database) as target, sqlite3.connect(LeaderboardStore().path) as source:
        source.backup(target)
        target.executescript(
            "CREATE TABLE copy AS SELECT * FROM entries; DROP TABLE entries; ALTER TABLE copy RENAME TO entries;"
            f"UPDATE entries SET {column} = {value};"
        )
    one_line_error(invoke("leaderboard", "--db", database, "--split", "test"), str(database), column)
