"""Published reference figures (``baselines/reported.csv``) as leaderboard rows marked ``source="published"``.

They are figures from papers, each with its citation, never measured here: the leaderboard shows them only when
asked and dims them. Scores in the file are fractions in [0, 1], like every score in medico.
"""

from __future__ import annotations

import csv
from dataclasses import fields
from pathlib import Path

from medico.baselines import baseline_file
from medico.leaderboard.entry import PAPER_SCORES, SCORES, Entry, check_entry
from medico.leaderboard.errors import LeaderboardError

__all__ = ["REPORTED_CSV", "load_published", "reported_csv_path"]

REPORTED_CSV = Path("baselines") / "reported.csv"

_FLOATS = frozenset(SCORES) | {f"{name}_std" for name in SCORES} | frozenset(PAPER_SCORES) | {"fps"}
_INTS = frozenset({"run", "n_images"})
_OPTIONAL_TEXT = frozenset({"fps_device", "fps_kind", "fps_precision", "dataset_fingerprint", "created"})
_COLUMNS = frozenset(f.name for f in fields(Entry)) - {"id", "source", "sha256", "metric_policy"}
_REQUIRED = ("team", "model", "citation")


def reported_csv_path() -> Path:
    """``baselines/reported.csv`` in the workspace, else the one shipped with medico."""
    found = baseline_file(REPORTED_CSV.name)
    if found is None:
        raise LeaderboardError(f"no {REPORTED_CSV} in this workspace, and medico's own copy is missing")
    return found[0]


def _parse(path: Path, line: int, column: str, text: str) -> object:
    text = text.strip()
    try:
        if column in _FLOATS:
            return float(text) if text else None
        if column in _INTS:
            return int(text) if text else None
    except ValueError:
        kind = "a number" if column in _FLOATS else "an integer"
        raise LeaderboardError(
            f"{path}, line {line}, column {column}: expected {kind} or nothing, got {text!r}"
        ) from None
    if column in _OPTIONAL_TEXT:
        return text or None
    return text


def load_published(path: Path | None = None) -> list[Entry]:
    """The published rows of ``path`` (default :func:`reported_csv_path`), in file order, validated."""
    path = reported_csv_path() if path is None else Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            unknown = sorted(set(header) - _COLUMNS)
            missing = [name for name in _REQUIRED if name not in header]
            if unknown or missing:
                raise LeaderboardError(
                    f"{path}: expected columns among {', '.join(sorted(_COLUMNS))} including {', '.join(_REQUIRED)}; "
                    f"unknown: {', '.join(unknown) or 'none'}, missing: {', '.join(missing) or 'none'}"
                )
            rows = [(reader.line_num, row) for row in reader]
    except OSError as error:
        raise LeaderboardError(f"published figures file {path} cannot be read: {error.strerror or error}") from error
    except (UnicodeDecodeError, csv.Error) as error:  # not UTF-8, or a cell beyond the csv module's field limit
        raise LeaderboardError(f"published figures file {path}: expected UTF-8 CSV, but {error}") from error
    entries = []
    for line, row in rows:
        if None in row:
            raise LeaderboardError(f"{path}, line {line}: expected {len(header)} cells, found more")
        values = {column: _parse(path, line, column, text or "") for column, text in row.items()}
        for name in _REQUIRED:
            if not values[name]:
                raise LeaderboardError(f"{path}, line {line}: every published row needs a {name}, found none")
        try:
            entry = Entry(**values, source="published")
            check_entry(entry)
        except LeaderboardError as error:
            raise LeaderboardError(f"{path}, line {line}: {error}") from None
        entries.append(entry)
    return entries
