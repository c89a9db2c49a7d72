"""`medico data check`: a summary, every problem with its file, and an exit code that says whether it is usable."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from medico.cli import app
from medico.data.cache import DecodedCache
from medico.data.loader import PolypTrainingSet
from medico.data.synthetic import SyntheticDataset, write_synthetic_kvasir


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wide console, so that long paths are not wrapped in the middle of what the tests look for."""
    monkeypatch.setenv("COLUMNS", "400")


def test_a_clean_folder_is_summarised_and_usable(tmp_path: Path) -> None:
    folder = write_synthetic_kvasir(tmp_path / "kvasir", count=5, val_count=1)
    result = CliRunner().invoke(app, ["data", "check", str(folder)])
    assert result.exit_code == 0, result.output
    for expected in ("5 (5 readable)", "160x160 to 224x176 (3 different sizes)", "4 train / 1 val", "usable"):
        assert expected in result.output


def test_each_problem_is_listed_with_its_file_and_the_exit_code_is_1(tmp_path: Path) -> None:
    folder = write_synthetic_kvasir(tmp_path / "kvasir", count=4)
    (folder / "masks" / "synthetic-0001.jpg").unlink()
    (folder / "images" / "synthetic-0002.jpg").write_bytes(b"\xff\xd8\xff")
    result = CliRunner().invoke(app, ["data", "check", str(folder)])
    assert result.exit_code == 1
    assert "images/synthetic-0001.jpg: image without mask" in result.output
    assert "images/synthetic-0002.jpg: cannot read image" in result.output
    assert "not usable: 2 problems" in result.output


def test_a_path_that_is_no_dataset_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["data", "check", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "no such file or folder" in result.output


def test_the_decoded_cache_is_listed_per_input_size_and_cleared_one_size_at_a_time(workspace: Path) -> None:
    dataset = SyntheticDataset(count=3)
    for size in (16, 32):
        train_set = PolypTrainingSet(dataset, dataset.names, size, augment=False)
        for index in range(len(train_set)):
            train_set.decoded(index)
    (workspace / ".cache" / "decoded" / "notes.txt").write_text("not an entry")

    runner = CliRunner()
    listed = runner.invoke(app, ["data", "cache"])
    assert listed.exit_code == 0, listed.output
    assert "16x16" in listed.output and "32x32" in listed.output and listed.output.count(" 3 ") >= 2

    cleared = runner.invoke(app, ["data", "cache", "--clear", "--size", "16"])
    assert cleared.exit_code == 0 and "deleted 3 decoded entries of input size 16" in cleared.output
    assert [(side, entries) for side, (entries, _) in DecodedCache().usage().items()] == [(32, 3)]
    assert runner.invoke(app, ["data", "cache", "--clear"]).exit_code == 0
    assert DecodedCache().usage() == {}
    assert (workspace / ".cache" / "decoded" / "notes.txt").read_text() == "not an entry"  # only entries go
    assert "is empty" in runner.invoke(app, ["data", "cache"]).output
