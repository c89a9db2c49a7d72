"""The leaderboard database: one entry per scored file, nothing lost under concurrent writers, migration of an older
file, and clear errors for a corrupted, locked or newer database."""

from __future__ import annotations

import multiprocessing
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from medico.leaderboard import Entry, LeaderboardError, LeaderboardStore, default_db_path
from medico.leaderboard.store import SCHEMA_VERSION


def _entry(**overrides) -> Entry:
    values = dict(team="polypers", model="attunet", dice=0.8, iou=0.7, run=1)
    values.update(overrides)
    return Entry(**values)


def test_default_path_is_in_the_workspace_unless_medico_db_says_otherwise(monkeypatch, tmp_path):
    monkeypatch.delenv("MEDICO_DB", raising=False)
    assert default_db_path() == Path("leaderboard") / "medico.sqlite"
    monkeypatch.setenv("MEDICO_DB", str(tmp_path / "elsewhere.sqlite"))
    assert default_db_path() == tmp_path / "elsewhere.sqlite"


def test_a_new_store_creates_its_folder_in_the_workspace(workspace):
    store = LeaderboardStore()
    assert store.path == workspace / "leaderboard" / "medico.sqlite"
    assert store.path.is_file()
    assert store.schema_version() == SCHEMA_VERSION
    assert store.entries() == []


def test_entries_come_back_with_ids_creation_time_and_every_field(workspace):
    store = LeaderboardStore()
    policy = {"threshold": 0.5, "reduction": "mean over images"}
    entry = _entry(
        precision=0.9, recall=0.85, f2=0.86, accuracy=0.95, dice_std=0.1, fps=42.5, fps_device="cpu",
        fps_kind="model", n_images=120, dataset_fingerprint="abc", metric_policy=policy, sha256="f" * 64, note="hi",
    )
    row_id = store.add(entry)
    (stored,) = store.entries()
    assert stored.id == row_id
    assert stored.created is not None and stored.created.endswith("+00:00")
    assert stored == replace(entry, id=row_id, created=stored.created)
    assert stored.metric_policy == policy


def test_the_same_file_scored_twice_is_stored_once(workspace):
    store = LeaderboardStore()
    first = store.add(_entry(sha256="a" * 64))
    assert first is not None
    assert store.add(_entry(sha256="a" * 64, dice=0.9)) is None
    assert store.add(_entry(sha256="a" * 64, split="test")) is not None
    assert store.add(_entry(sha256=None)) is not None and store.add(_entry(sha256=None)) is not None
    assert [e.dice for e in store.entries(split="val", task="segmentation")] == [0.8, 0.8, 0.8]


def test_filters_select_by_task_split_model_team_and_device(workspace):
    store = LeaderboardStore()
    store.add(_entry(team="a", fps_device="cpu"))
    store.add(_entry(team="b", model="unet", split="test", fps_device="cuda"))
    store.add(_entry(team="a", task="efficiency", fps=10.0, fps_device="cuda"))
    assert [e.team for e in store.entries(team="a")] == ["a", "a"]
    assert [e.model for e in store.entries(model="unet")] == ["unet"]
    assert [e.split for e in store.entries(split="test")] == ["test"]
    assert [e.task for e in store.entries(task="efficiency", device="cuda")] == ["efficiency"]


def test_next_run_number_counts_per_team_and_task(workspace):
    store = LeaderboardStore()
    assert store.next_run_number("a", "segmentation") == 1
    store.add(_entry(team="a", run=3))
    assert store.next_run_number("a", "segmentation") == 4
    assert store.next_run_number("a", "efficiency") == 1
    assert store.next_run_number("b", "segmentation") == 1


@pytest.mark.parametrize(
    ("field", "value"), [("dice", 89.88), ("iou", -0.1), ("task", "detection"), ("split", "train"), ("fps", 0.0)]
)
def test_an_entry_that_cannot_be_ranked_honestly_is_refused(workspace, field, value):
    store = LeaderboardStore()
    with pytest.raises(LeaderboardError, match=field):
        store.add(_entry(**{field: value}))
    assert store.entries() == []


def _write_entries(path: str, worker: int, count: int, barrier) -> list[int | None]:
    store = LeaderboardStore(Path(path))
    barrier.wait()
    ids = [store.add(_entry(team=f"team{worker}", run=i, sha256=f"{worker}-{i}")) for i in range(1, count + 1)]
    ids.append(store.add(_entry(team="shared", sha256="the same archive")))  # one file, one team
    return ids


def test_several_processes_writing_at_once_lose_nothing(tmp_path):
    path = tmp_path / "leaderboard" / "medico.sqlite"
    LeaderboardStore(path)
    workers, count = 4, 25
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(workers)
        with context.Pool(workers) as pool:
            results = pool.starmap(_write_entries, [(str(path), w, count, barrier) for w in range(workers)])
    entries = LeaderboardStore(path).entries()
    assert len(entries) == workers * count + 1
    assert sum(ids[-1] is not None for ids in results) == 1, "the shared archive is stored exactly once"
    inserted = [i for ids in results for i in ids if i is not None]
    assert sorted(inserted) == sorted(e.id for e in entries)
    for w in range(workers):
        own = [e.run for e in entries if e.team == f"team{w}" and e.sha256 != "the same archive"]
        assert sorted(own) == list(range(1, count + 1))


_VERSION_1 = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (1);
CREATE TABLE entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, team TEXT NOT NULL, model TEXT NOT NULL, task TEXT NOT NULL,
    split TEXT NOT NULL, run INTEGER, dice REAL, iou REAL, precision REAL, recall REAL, f2 REAL, accuracy REAL,
    dice_std REAL, iou_std REAL, precision_std REAL, recall_std REAL, f2_std REAL, accuracy_std REAL, fps REAL,
    fps_device TEXT, fps_kind TEXT, n_images INTEGER, dataset_fingerprint TEXT,
    metric_policy TEXT NOT NULL DEFAULT '{}', source TEXT NOT NULL, sha256 TEXT, created TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT ''
);
INSERT INTO entries (team, model, task, split, dice, iou, metric_policy, source, sha256, created)
VALUES ('old', 'unet', 'segmentation', 'val', 0.7, 0.6, '{"threshold": 0.5}', 'submission', 'abc',
        '2020-10-01T00:00:00+00:00'),
       ('old', 'unet', 'segmentation', 'val', 0.9, 0.8, '{}', 'submission', 'abc', '2020-10-02T00:00:00+00:00'),
       ('old', 'unet', 'segmentation', 'test', 0.5, 0.4, '{}', 'measured', NULL, '2020-10-03T00:00:00+00:00');
"""


def test_a_database_from_schema_version_1_is_migrated_and_keeps_its_entries(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as connection:
        connection.executescript(_VERSION_1)
    store = LeaderboardStore(path)
    assert store.schema_version() == SCHEMA_VERSION
    entries = store.entries()
    assert [(e.dice, e.split, e.citation) for e in entries] == [(0.7, "val", ""), (0.5, "test", "")]
    assert entries[0].metric_policy == {"threshold": 0.5}
    assert store.add(_entry(team="old", sha256="abc")) is None
    assert store.add(_entry(sha256="abc", split="test")) is not None
    assert LeaderboardStore(path).schema_version() == SCHEMA_VERSION  # opening again changes nothing


def test_a_read_only_store_reads_a_version_1_database_as_it_is(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as connection:
        connection.executescript(_VERSION_1)
    store = LeaderboardStore(path, read_only=True)
    entries = [(e.dice, e.split, e.dataset) for e in store.entries()]
    assert entries == [(0.7, "val", ""), (0.9, "val", ""), (0.5, "test", "")]
    assert store.schema_version() == 1, "viewing migrates nothing"
    with pytest.raises(LeaderboardError, match="read-only"):
        store.add(_entry())


def test_a_database_from_a_newer_medico_is_refused(tmp_path):
    path = tmp_path / "new.sqlite"
    LeaderboardStore(path)
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(LeaderboardError, match="newer"):
        LeaderboardStore(path)


def test_a_corrupted_database_gives_an_error_naming_the_file(tmp_path):
    path = tmp_path / "broken.sqlite"
    path.write_bytes(b"this is not a database at all " * 200)
    with pytest.raises(LeaderboardError, match="broken.sqlite") as caught:
        LeaderboardStore(path)
    assert "corrupted" in str(caught.value)


def test_a_locked_database_gives_an_error_naming_the_file(tmp_path):
    path = tmp_path / "busy.sqlite"
    store = LeaderboardStore(path, timeout=0.2)
    locker = sqlite3.connect(path, isolation_level=None)
    try:
        locker.execute("BEGIN IMMEDIATE")
        with pytest.raises(LeaderboardError, match="busy.sqlite.*locked"):
            store.add(_entry())
    finally:
        locker.close()
    assert store.add(_entry()) is not None
