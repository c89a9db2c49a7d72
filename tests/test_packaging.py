"""What an installed medico ships: every package, and the baselines' settings and published rows with it."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib
from medico.baselines import baseline_file

from medico.leaderboard.published import reported_csv_path
from medico.plugins import get_plugin
from medico.runs.config import resolve_config

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_of_the_source_tree_is_listed_for_the_wheel() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "medico").rglob("__init__.py")
    } | {"medico.baselines"}
    assert found == listed, "pyproject.toml's [tool.setuptools] packages must list every package"


def test_from_an_empty_folder_the_shipped_settings_and_rows_are_used_and_named(workspace: Path) -> None:
    config = resolve_config("unet", get_plugin("unet"))
    assert config.sources["options.init_features"] == "medico's unet.toml"
    assert reported_csv_path() == ROOT / "baselines" / "reported.csv"


def test_a_workspace_file_replaces_the_shipped_one_and_is_named(workspace: Path) -> None:
    (workspace / "baselines").mkdir()
    (workspace / "baselines" / "unet.toml").write_text("[options]\ninit_features = 8\n")
    config = resolve_config("unet", get_plugin("unet"))
    assert (config.options["init_features"], config.sources["options.init_features"]) == (8, "baselines/unet.toml")


@pytest.mark.parametrize("name", ["../pyproject.toml", "/etc/passwd", ".hidden", "", "a/b.toml"])
def test_only_plain_file_names_are_looked_up(name: str) -> None:
    assert baseline_file(name) is None
