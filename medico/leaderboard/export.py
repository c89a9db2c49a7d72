"""The leaderboard as files: CSV and JSON (every field, for machines), markdown and a self-contained HTML page (the
displayed columns and what each means, for people). The CSV is safe in a spreadsheet: a text cell that starts with
``= + - @`` (or a tab, a carriage return, or a quote) is prefixed with ``'`` so it is never run as a formula."""

from __future__ import annotations

import csv
import html
import io
import json
from dataclasses import asdict, fields
from itertools import groupby
from pathlib import Path
from typing import Literal

from medico.files import write_atomic
from medico.leaderboard.columns import best_values, display_columns
from medico.leaderboard.entry import Entry
from medico.leaderboard.ranking import Ranked
from medico.leaderboard.render import TASK_TITLES

__all__ = ["EXPORT_FIELDS", "FORMATS", "Format", "export_text", "neutralise_cell", "write_export"]

Format = Literal["csv", "markdown", "json", "html"]
FORMATS = ("csv", "markdown", "json", "html")
EXPORT_FIELDS = ("group", "rank", *(f.name for f in fields(Entry)))
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def neutralise_cell(text: str) -> str:
    """``text`` made inert for spreadsheets: a leading ``'`` when it starts like a formula (or with a quote, so that
    stripping one leading quote always gives the original back)."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _records(rows: list[Ranked]) -> list[dict[str, object]]:
    return [{"group": row.group, "rank": row.rank, **asdict(row.entry)} for row in rows]


def _csv(rows: list[Ranked]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    for record in _records(rows):
        record["metric_policy"] = json.dumps(record["metric_policy"], sort_keys=True)
        writer.writerow({k: neutralise_cell(v) if isinstance(v, str) else v for k, v in record.items()})
    return buffer.getvalue()


def _json(rows: list[Ranked]) -> str:
    return json.dumps(_records(rows), indent=2, ensure_ascii=False) + "\n"


def _markdown_cell(text: str) -> str:
    """Text that stays inside its markdown table cell and shows literally (pipes, emphasis, links, html escaped)."""
    text = " ".join(text.split())
    for char in "\\`*_[]<>|#~":
        text = text.replace(char, "\\" + char)
    return text


def _markdown(rows: list[Ranked], task: str, intervals: bool, paper: bool) -> str:
    columns = display_columns(task, intervals, paper)
    lines = [f"# {TASK_TITLES.get(task, task)}", ""]
    citations: dict[str, int] = {}
    for group, members in groupby(rows, key=lambda row: row.group):
        members = list(members)
        best = best_values(members, columns)
        lines += [f"## {_markdown_cell(group)}", ""]
        lines.append("| " + " | ".join(column.header for column in columns) + " |")
        lines.append("|" + "|".join("---:" if column.numeric else "---" for column in columns) + "|")
        for row in members:
            cells = []
            for column in columns:
                value = column.value(row)
                text = _markdown_cell(column.cell(row))
                cells.append(f"**{text}**" if value is not None and best.get(column.header) == value else text)
            if row.entry.source == "published":
                number = citations.setdefault(row.entry.citation, len(citations) + 1)
                cells[1] += f" *(published [{number}])*"
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if rows:
        lines += ["What the columns mean:", ""]
        lines += [f"- **{_markdown_cell(column.header)}**: {_markdown_cell(column.meaning)}" for column in columns]
        lines.append("")
    if citations:
        lines += ["Published figures (not measured here):", ""]
        lines += [f"{number}. {_markdown_cell(citation)}" for citation, number in citations.items()]
        lines.append("")
    return "\n".join(lines)


_HTML_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 2em; }
th, td { padding: 0.3em 0.7em; border-bottom: 1px solid #ddd; }
th { cursor: pointer; background: #f4f4f4; user-select: none; }
th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { font-weight: bold; color: #176b1e; }
tr.published { color: #888; font-style: italic; }
dl.legend { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; color: #444; }
dl.legend dt { font-weight: bold; }
dl.legend dd { margin: 0; }
"""

# Click a header to sort by it; a second click reverses. Numeric cells sort by data-value, missing values last.
_HTML_SCRIPT = """
document.querySelectorAll("table.leaderboard").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, index) {
    th.addEventListener("click", function () {
      var descending = th.getAttribute("aria-sort") === "ascending";
      table.querySelectorAll("th").forEach(function (other) { other.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", descending ? "descending" : "ascending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[index], y = b.cells[index];
        var vx = x.dataset.value, vy = y.dataset.value;
        if (vx === undefined || vy === undefined) {
          var c = x.textContent.localeCompare(y.textContent);
          return descending ? -c : c;
        }
        if (vx === "") return 1;
        if (vy === "") return -1;
        return descending ? vy - vx : vx - vy;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def _html(rows: list[Ranked], task: str, intervals: bool, paper: bool, title: str | None = None) -> str:
    columns = display_columns(task, intervals, paper)
    title = html.escape(title or TASK_TITLES.get(task, task))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>medico leaderboard: {title}</title>",
        f"<style>{_HTML_STYLE}</style></head><body>",
        f"<h1>{title}</h1>",
    ]
    for group, members in groupby(rows, key=lambda row: row.group):
        members = list(members)
        best = best_values(members, columns)
        parts.append(f"<h2>{html.escape(group)}</h2>")
        parts.append('<table class="leaderboard"><thead><tr>')
        parts += [f"<th>{html.escape(column.header)}</th>" for column in columns]
        parts.append("</tr></thead><tbody>")
        for row in members:
            published = row.entry.source == "published"
            tooltip = f' title="{html.escape(row.entry.citation)}"' if published else ""
            parts.append(f'<tr class="{"published" if published else "measured"}"{tooltip}>')
            for column in columns:
                value = column.value(row)
                text = html.escape(column.cell(row))
                if column.header == "team" and published:
                    text += " (published)"
                classes = ["num"] if column.numeric else []
                if value is not None and best.get(column.header) == value:
                    classes.append("best")
                attributes = f' class="{" ".join(classes)}"' if classes else ""
                if column.numeric:
                    attributes += f' data-value="{"" if value is None else value}"'
                parts.append(f"<td{attributes}>{text}</td>")
            parts.append("</tr>")
        parts.append("</tbody></table>")
    if rows:
        parts.append('<h2>What the columns mean</h2><dl class="legend">')
        parts += [f"<dt>{html.escape(column.header)}</dt><dd>{html.escape(column.meaning)}</dd>" for column in columns]
        parts.append("</dl>")
    citations = dict.fromkeys(row.entry.citation for row in rows if row.entry.source == "published")
    if citations:
        parts.append("<h2>Published figures (not measured here)</h2><ol>")
        parts += [f"<li>{html.escape(citation)}</li>" for citation in citations]
        parts.append("</ol>")
    parts.append(f"<script>{_HTML_SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"


def export_text(
    rows: list[Ranked], fmt: Format, task: str, intervals: bool = False, paper: bool = False, title: str | None = None
) -> str:
    """The leaderboard ``rows`` of ``task`` as text in ``fmt`` (csv, markdown, json or html).

    ``intervals`` shows mIoU and Dice with their 95% bootstrap interval in markdown and html, ``paper`` the measures
    polyp papers report (CSV and JSON always hold every field); ``title`` heads the html page instead of the task's
    name (a hosted challenge's name).
    """
    if fmt == "csv":
        return _csv(rows)
    if fmt == "json":
        return _json(rows)
    if fmt == "markdown":
        return _markdown(rows, task, intervals, paper)
    if fmt == "html":
        return _html(rows, task, intervals, paper, title)
    raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")


def write_export(
    rows: list[Ranked],
    fmt: Format,
    task: str,
    path: Path,
    intervals: bool = False,
    *,
    paper: bool = False,
    replace: bool = False,
) -> Path:
    """Write the export to ``path`` atomically (readers never see half a file); ``intervals`` and ``paper`` as in
    :func:`export_text`; an existing file is replaced only with ``replace``."""
    return write_atomic(Path(path), export_text(rows, fmt, task, intervals, paper), replace=replace)
