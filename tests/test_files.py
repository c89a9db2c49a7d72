"""Atomic writes: the old file or the new one, never half; readable like any other file; nothing left on failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medico.files import atomic_path, write_atomic


def test_a_written_file_has_the_usual_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = write_atomic(tmp_path / "summary.json", "{}")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = write_atomic(tmp_path / "scores.csv", "old")
    with pytest.raises(RuntimeError), atomic_path(target, replace=True) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["scores.csv"]
