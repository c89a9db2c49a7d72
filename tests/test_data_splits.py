"""Splits: the organisers' lists, the seeded random 80:20 split, user files, and the errors a user can cause."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medico.data import DataError, open_dataset, resolve_split
from medico.data.splits import random_split
from medico.data.synthetic import SyntheticDataset, write_synthetic_kvasir

names_lists = st.lists(st.text("abcdefghij0123456789-", min_size=1, max_size=12), min_size=2, max_size=200, unique=True)


@given(names=names_lists, seed=st.integers(0, 2**31))
@settings(max_examples=60, deadline=None)
def test_the_random_split_is_a_seeded_80_20_partition(names: list[str], seed: int) -> None:
    split = random_split(names, seed=seed)
    assert set(split.train) | set(split.val) == set(names)
    assert not set(split.train) & set(split.val)
    assert split.train and split.val
    assert abs(len(split.val) - 0.2 * len(names)) <= 1
    assert random_split(list(reversed(names)), seed=seed) == split  # depends on the names, not their order


def test_the_random_split_of_1000_names_is_pinned() -> None:
    split = random_split([f"n{i:04d}" for i in range(1000)], seed=0)
    assert (len(split.train), len(split.val)) == (800, 200)
    assert split.val[:3] == ("n0002", "n0008", "n0012")  # the same on every machine (NumPy's PCG64)
    assert split.digest != random_split([f"n{i:04d}" for i in range(1000)], seed=1).digest


def test_auto_picks_medico2020_where_the_dataset_has_it_and_random_otherwise(tmp_path: Path) -> None:
    with_lists = open_dataset(write_synthetic_kvasir(tmp_path / "a", count=10, val_count=3))
    without = open_dataset(write_synthetic_kvasir(tmp_path / "b", count=10))
    assert resolve_split(with_lists, "auto") == resolve_split(with_lists, "medico2020")
    assert resolve_split(with_lists, "auto").val == ("synthetic-0007", "synthetic-0008", "synthetic-0009")
    assert resolve_split(without, "auto").name == "random"
    with pytest.raises(DataError, match="no splits/medico2020/train.txt"):
        resolve_split(without, "medico2020")


def test_the_synthetic_set_splits_with_auto_and_random_but_not_medico2020() -> None:
    dataset = SyntheticDataset(seed=0)
    assert resolve_split(dataset, "auto") == resolve_split(dataset, "random")
    assert len(resolve_split(dataset, "random").val) == 40
    with pytest.raises(DataError, match="--split random"):
        resolve_split(dataset)


def test_user_split_files_are_read_and_checked(tmp_path: Path) -> None:
    dataset = open_dataset(write_synthetic_kvasir(tmp_path / "d", count=5))
    train, val = tmp_path / "train.txt", tmp_path / "val.txt"
    train.write_text("# mine\nsynthetic-0000\nsynthetic-0001.jpg\n\nsynthetic-0002\n")
    val.write_text("synthetic-0003\n")
    split = resolve_split(dataset, files={"train": train, "val": val})
    assert split.train == ("synthetic-0000", "synthetic-0001", "synthetic-0002") and split.val == ("synthetic-0003",)

    val.write_text("synthetic-0003\nsynthetic-0042\n")
    with pytest.raises(DataError, match=r"1 val names are not in .*synthetic-0042"):
        resolve_split(dataset, files={"train": train, "val": val})
    val.write_text("synthetic-0002\n")
    with pytest.raises(DataError, match=r"in both train and val: synthetic-0002"):
        resolve_split(dataset, files={"train": train, "val": val})
    val.write_text("synthetic-0003\nsynthetic-0003\n")
    with pytest.raises(DataError, match=r"val.txt: names listed more than once: synthetic-0003"):
        resolve_split(dataset, files={"train": train, "val": val})
    with pytest.raises(DataError, match="cannot read"):
        resolve_split(dataset, files={"train": train, "val": tmp_path / "absent.txt"})

    val.write_text("synthetic-0003\nsynthetic-0004\n")
    assert resolve_split(dataset, str(tmp_path)).val == ("synthetic-0003", "synthetic-0004")  # a folder of lists
    val.unlink()
    with pytest.raises(DataError, match=r"split folder .*val.txt missing \(expected train.txt and val.txt\)"):
        resolve_split(dataset, str(tmp_path))


def test_an_unknown_split_name_lists_the_known_ones() -> None:
    with pytest.raises(DataError, match="auto, medico2020, random or a folder holding train.txt and val.txt"):
        resolve_split(SyntheticDataset(count=10), "official")


def test_the_real_medico2020_split_is_880_120_and_disjoint(kvasir_path: Path) -> None:
    split = resolve_split(open_dataset(kvasir_path), "medico2020")
    assert (len(split.train), len(split.val)) == (880, 120)
    assert not set(split.train) & set(split.val)
