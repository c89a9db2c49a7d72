"""``medico leaderboard``: the views, team names printed literally, exports that round-trip, a spreadsheet-safe CSV,
a self-contained sortable HTML page, atomic --output, and clean errors."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import asdict, fields
from html.parser import HTMLParser

import pytest
from typer.testing import CliRunner

from medico.cli import app
from medico.leaderboard import Entry, LeaderboardStore

WIDE = {"COLUMNS": "220"}
HOSTILE_TEAM = "[bold red]x"
FORMULA_TEAM = "=HYPERLINK(evil;x)"  # a plain team name, yet a formula in a spreadsheet


def _invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, ["leaderboard", *args], env=env or WIDE)


@pytest.fixture
def store(workspace) -> LeaderboardStore:
    store = LeaderboardStore()
    store.add(Entry(team=HOSTILE_TEAM, model="attunet", run=1, iou=0.70, dice=0.80, precision=0.81, recall=0.85,
                    f2=0.83, accuracy=0.95, fps=120.0, fps_device="cpu", fps_kind="model",
                    created="2020-12-01T10:00:00+00:00"))
    store.add(Entry(team="b_pipes", model="u|net", run=1, iou=0.75, dice=0.85, fps=80.0, fps_device="cpu",
                    fps_kind="model", created="2020-12-02T10:00:00+00:00", note="first try"))
    store.add(Entry(team="b_pipes", model="u|net", run=2, iou=0.72, dice=0.82, fps=85.0, fps_device="cpu",
                    fps_kind="model", created="2020-12-03T10:00:00+00:00", metric_policy={"threshold": 0.5}))
    store.add(Entry(team=FORMULA_TEAM, model="-unet", run=1, iou=0.6, dice=0.7, split="test",
                    created="2020-12-04T10:00:00+00:00", note="@mention +1"))
    store.add(Entry(team="fast", model="unet", task="efficiency", run=1, iou=0.5, dice=0.6, fps=300.0,
                    fps_device="NVIDIA H100", fps_kind="end-to-end", created="2020-12-05T10:00:00+00:00"))
    return store


def _runs(output: str) -> list[tuple[str, str]]:
    """(team, run) of each data row of a rich table printed at a wide terminal."""
    rows = []
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if len(cells) > 3 and cells[0]:
            rows.append((cells[1], cells[2]))
    return rows


def test_without_entries_it_says_how_to_add_some(workspace):
    result = _invoke()
    assert result.exit_code == 0
    assert "No segmentation entries" in result.stderr and "medico score" in result.stderr


def _said(text: str) -> str:
    """``text`` with rich's line wrapping and table borders undone."""
    return " ".join(re.sub(r"[\u2500-\u257f]", " ", text).split())


def test_without_a_scored_test_archive_it_says_why_and_how_one_gets_a_row(workspace):
    LeaderboardStore().add(Entry(team="root", model="unet", run=1, iou=0.7, dice=0.8, fps=26.0, fps_device="cpu"))
    why = "No test-set archive is scored here: the test images have no public ground truth"
    assert why not in _said(_invoke().stderr), "nothing was submitted: nothing to explain"
    (workspace / "submissions" / "T").mkdir(parents=True)
    (workspace / "submissions" / "T" / "T_task1_run1.zip").write_bytes(b"PK")  # as `medico submit` leaves one
    result = _invoke()
    assert _runs(result.stdout) == [("root", "1")]
    assert why in _said(result.stderr) and "`medico score ARCHIVE --truth DIR --team TEAM`" in _said(result.stderr)
    test_only = _invoke("--split", "test")
    assert why in _said(test_only.stderr) and "validation scores show with --split val" in _said(test_only.stderr)
    assert why not in _said(_invoke("--split", "val").stderr), "validation only was asked for"
    assert why in _said(_invoke("--with-published").stderr), "a published test-set figure is no team's archive"


def test_a_scored_test_archive_needs_no_word_of_why(store):
    assert "No test-set archive" not in _said(_invoke().stderr)
    assert "No test-set archive" not in _said(_invoke("--split", "test").stderr)


def test_the_legend_says_what_each_column_means_and_why_fps_at_and_device_read_a_dash(store):
    table = _invoke("--split", "test")
    assert "--legend says what each column means" in _said(table.stdout)
    assert "FPS, at and device -: no speed measured (a scored archive holds masks only)" in _said(table.stdout)
    legend = _said(_invoke("--split", "test", "--legend").stdout)
    assert "--legend says" not in legend
    assert "at the precision FPS was measured at (fp32, bf16 or fp16); -: no FPS" in legend
    assert "team who the row counts for: medico run's --team, else $MEDICO_TEAM, else the login name" in legend
    markdown = _invoke("--format", "markdown").stdout
    assert "- **at**: the precision FPS was measured at" in markdown and "What the columns mean" in markdown


def test_each_team_best_by_default_every_run_or_each_team_latest_on_request(store):
    assert _runs(_invoke("--split", "val").stdout) == [("b_pipes", "1"), (HOSTILE_TEAM, "1")]
    every_run = [("b_pipes", "1"), ("b_pipes", "2"), (HOSTILE_TEAM, "1")]
    assert _runs(_invoke("--split", "val", "--all-runs").stdout) == every_run
    assert _runs(_invoke("--split", "val", "--latest").stdout) == [("b_pipes", "2"), (HOSTILE_TEAM, "1")]
    assert _runs(_invoke("--model", "attunet").stdout) == [(HOSTILE_TEAM, "1")]


def test_team_names_are_printed_literally(store):
    result = _invoke("--split", "val")
    assert result.exit_code == 0
    assert HOSTILE_TEAM in result.stdout


def test_splits_are_ranked_separately_when_no_split_is_chosen(store):
    output = _invoke().stdout
    assert "(test split)" in output and "(val split)" in output
    assert re.search(r"│\s+1 │ =HYPERLINK", output), "the only test entry ranks first among test entries"


def test_published_rows_appear_marked_only_with_published(store):
    assert "(published)" not in _invoke().stdout
    output = _invoke("--with-published").stdout
    assert "HarDNet-MSEG" in output and "(published)" in output and "not measured here" in output


def test_efficiency_ranks_fps_per_device(store):
    output = _invoke("--task", "efficiency").stdout
    assert "NVIDIA H100, end-to-end FPS" in output and "300.0" in output
    assert _invoke("--task", "efficiency", "--device", "NVIDIA A100").stderr.startswith("No efficiency entries")


def test_measured_runs_with_fps_are_ranked_for_efficiency_too(store):
    """A run's entry carries its validation scores and its model FPS: it stands on both boards."""
    output = _invoke("--task", "efficiency", "--device", "cpu").stdout
    assert _runs(output) == [(HOSTILE_TEAM, "1"), ("b_pipes", "2")]  # by FPS: 120, then the team's best 85
    assert "HYPERLINK" not in output  # no FPS, no place on the efficiency board


def test_the_csv_is_safe_in_a_spreadsheet_and_reads_back(store):
    result = _invoke("--format", "csv", "--all-runs")
    assert result.exit_code == 0
    records = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(records) == 4
    for record in records:
        for value in record.values():
            assert not value.startswith(("=", "+", "-", "@")), value
    formula = next(r for r in records if "HYPERLINK" in r["team"])
    assert (formula["team"], formula["model"], formula["note"]) == ("'" + FORMULA_TEAM, "'-unet", "'@mention +1")
    stored = {e.id: e for e in store.entries()}
    for record in records:
        entry = stored[int(record["id"])]
        assert record["team"].removeprefix("'") == entry.team
        assert float(record["iou"]) == entry.iou and float(record["dice"]) == entry.dice
        assert json.loads(record["metric_policy"]) == entry.metric_policy


def test_the_json_export_round_trips_to_the_stored_entries(store):
    result = _invoke("--format", "json", "--all-runs", "--split", "val")
    records = json.loads(result.stdout)
    names = {f.name for f in fields(Entry)}
    entries = [Entry(**{k: v for k, v in record.items() if k in names}) for record in records]
    assert sorted(entries, key=lambda e: e.id) == store.entries(task="segmentation", split="val")
    assert [(r["rank"], r["group"]) for r in records] == [(1, "val split"), (2, "val split"), (3, "val split")]


def test_the_markdown_table_keeps_its_columns_whatever_the_team_is_called(store):
    output = _invoke("--format", "markdown", "--all-runs", "--with-published").stdout
    table_lines = [line for line in output.splitlines() if line.startswith("|")]
    widths = {len(re.findall(r"(?<!\\)\|", line)) for line in table_lines}
    assert widths == {14}, "13 columns: 14 unescaped pipes per line"
    assert r"u\|net" in output and r"\[bold red\]x" in output
    assert "Published figures (not measured here)" in output and "arXiv:2101.07172" in output


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_the_html_page_is_self_contained_sortable_and_escapes_names(store, workspace):
    result = _invoke("--format", "html", "--all-runs", "--with-published", "--output", "board.html")
    assert result.exit_code == 0, result.output
    page_text = (workspace / "board.html").read_text()
    page = _Page()
    page.feed(page_text)
    tags = [tag for tag, _ in page.tags]
    assert "link" not in tags and "img" not in tags and "iframe" not in tags
    assert all("src" not in attrs and "href" not in attrs for _, attrs in page.tags), "no network resources"
    # one table per comparison group: measured val and test entries, published Kvasir-SEG val, PraNet's own split,
    # the source paper's own 80:20 split
    assert tags.count("table") == 5 and tags.count("script") == 1 and "addEventListener" in page_text
    assert "<b>" not in page_text and HOSTILE_TEAM in "".join(page.text)
    assert any(attrs.get("data-value") == "0.75" for tag, attrs in page.tags if tag == "td")
    assert any(attrs.get("class") == "published" for tag, attrs in page.tags if tag == "tr")
    legend = page_text[page_text.index('<dl class="legend">') :]
    headers = re.findall(r"<th>(.*?)</th>", page_text[: page_text.index("</tr>")])
    assert re.findall(r"<dt>(.*?)</dt>", legend) == headers, "one line for each column of the table, in its order"
    assert "<dt>FPS</dt><dd>frames per second" in legend and "-: no speed measured" in legend


def test_output_writes_the_same_export_atomically(store, workspace):
    stdout = _invoke("--format", "markdown").stdout
    result = _invoke("--format", "markdown", "--output", "out/board.md")
    assert result.exit_code == 0 and "wrote" in result.stderr
    assert (workspace / "out" / "board.md").read_text() == stdout
    assert [p.name for p in (workspace / "out").iterdir()] == ["board.md"]
    assert _invoke("--output", "board.json").exit_code == 0, "the suffix chooses the format"
    assert json.loads((workspace / "board.json").read_text())


def test_an_output_without_a_format_it_can_infer_is_refused(store):
    result = _invoke("--output", "board.txt")
    assert result.exit_code == 2 and "board.txt" in result.stderr


def test_all_runs_and_latest_together_are_refused(store):
    result = _invoke("--all-runs", "--latest")
    assert result.exit_code == 2 and "--all-runs and --latest" in result.stderr


def test_a_corrupted_database_is_a_clean_error_naming_the_file(workspace):
    path = workspace / "broken.sqlite"
    path.write_bytes(b"garbage" * 1000)
    result = _invoke("--db", str(path))
    assert result.exit_code == 2
    assert "broken.sqlite" in result.stderr and "Traceback" not in result.output


def test_exports_include_every_entry_field(store):
    records = json.loads(_invoke("--format", "json").stdout)
    assert set(records[0]) == {"group", "rank", *asdict(store.entries()[0])}
