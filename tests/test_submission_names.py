"""Team names become one folder and part of a file name, never a path; run numbers follow the challenge rules."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from medico.submission import (
    MAX_TEAM_NAME,
    RunNumberError,
    TeamNameError,
    check_team_name,
    choose_run,
    run_name,
    team_dir,
)

ROOT = Path("/srv/submissions")


@given(st.text(max_size=80))
def test_any_accepted_name_stays_one_folder_inside_the_submissions_folder(name: str) -> None:
    try:
        folder = team_dir(ROOT, name)
    except TeamNameError as error:
        assert repr(name) in str(error)
        return
    assert folder.parent == ROOT
    assert folder.name == name
    assert (folder / f"{run_name(name, 'segmentation', 1)}.zip").parent == folder


@given(
    st.text(alphabet=st.characters(categories=("L", "N")) | st.sampled_from("-_ "), min_size=1, max_size=MAX_TEAM_NAME)
)
def test_plain_names_are_accepted_unchanged(name: str) -> None:
    assume(name == name.strip() and unicodedata.normalize("NFKC", name) == name)
    assert check_team_name(name) == name
    assert run_name(name, "efficiency", 3) == f"{name}_task2_run3"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("a/b", "'/'"),
        ("a\\b", "'\\\\'"),
        ("..", "dot"),
        ("team..x", "'..'"),
        (".hidden", "starts with a dot"),
        ("x" * (MAX_TEAM_NAME + 1), f"at most {MAX_TEAM_NAME}"),
        ("a\x00b", "control"),
        ("a\nb", "control"),
        ("C:team", "':'"),
        (" team", "white space"),
    ],
)
def test_hostile_team_names_are_refused_with_the_reason(name: str, reason: str) -> None:
    with pytest.raises(TeamNameError, match="--team") as error:
        check_team_name(name)
    assert reason in str(error.value)


def test_runs_take_the_lowest_free_number(tmp_path: Path) -> None:
    (tmp_path / "T_task1_run1.zip").write_bytes(b"")
    (tmp_path / "T_task1_run3.zip").write_bytes(b"")
    (tmp_path / "T_task2_run2").mkdir()
    assert choose_run(tmp_path, "T", "segmentation") == 2
    assert choose_run(tmp_path, "T", "efficiency") == 1


def test_a_sixth_run_is_refused_unless_max_runs_allows_it(tmp_path: Path) -> None:
    for number in range(1, 6):
        (tmp_path / f"T_task1_run{number}.zip").write_bytes(b"")
    with pytest.raises(RunNumberError, match="already has 5 task 1 runs"):
        choose_run(tmp_path, "T", "segmentation")
    assert choose_run(tmp_path, "T", "segmentation", max_runs=6) == 6


def test_an_existing_run_is_never_overwritten_without_force(tmp_path: Path) -> None:
    (tmp_path / "T_task1_run2.zip").write_bytes(b"")
    with pytest.raises(RunNumberError, match="--force"):
        choose_run(tmp_path, "T", "segmentation", run=2)
    assert choose_run(tmp_path, "T", "segmentation", run=2, force=True) == 2


def test_a_run_number_beyond_the_allowance_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RunNumberError, match="from 1 to 5"):
        choose_run(tmp_path, "T", "segmentation", run=6)


def test_a_run_slot_beyond_the_allowance_says_that_checkpoint_chooses_the_training_run(tmp_path) -> None:
    with pytest.raises(RunNumberError, match=r"--run 8: expected a number from 1 to 5 .*--checkpoint RUN"):
        choose_run(tmp_path, "T", "segmentation", run=8)
