"""Plugins register in three ways, unknown names and broken plugins give clear errors, the CLI lists them."""

from __future__ import annotations

import ast
import importlib.metadata
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medico import plugins
from medico.cli import COMMANDS, app
from medico.plugins import PluginError, UnknownModelError, create_model, get_plugin, list_models, plugin_errors

TINY_BUILDER = '''
import torch
from torch import nn


class Tiny(nn.Module):
    """One conv from RGB to a logit map."""

    def __init__(self, width: int = 2):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, kernel_size=1)

    def forward(self, x):
        return self.conv(x)


def build(width: int = 2) -> nn.Module:
    """A one-layer toy plugin for tests."""
    return Tiny(width)
'''


@pytest.fixture
def installed_plugin_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_registry: None) -> Path:
    """A real distribution (package + .dist-info with entry points) on sys.path: one good, one broken plugin."""
    package = tmp_path / "site" / "toynets"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text(TINY_BUILDER)
    (package / "broken.py").write_text("raise RuntimeError('missing CUDA extension')\n")
    dist_info = tmp_path / "site" / "toynets-1.2.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: toynets\nVersion: 1.2\n")
    (dist_info / "entry_points.txt").write_text(
        "[medico.models]\ntoynet = toynets.nets:build\nbrokennet = toynets.broken:build\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return tmp_path / "site"


def test_builtin_models_are_registered_by_decorator() -> None:
    assert {"unet", "attunet"} <= set(list_models())
    assert get_plugin("unet").origin == "built-in"


def test_register_model_decorator_returns_the_builder_and_lists_it(isolated_registry: None) -> None:
    def build(width: int = 2):
        """Decorated toy."""
        from torch import nn

        return nn.Conv2d(3, 1, 1)

    assert plugins.register_model("decorated-toy")(build) is build
    assert "decorated-toy" in list_models()
    assert get_plugin("decorated-toy").description == "Decorated toy."


def test_entry_point_plugin_is_listed_with_its_package(installed_plugin_package: Path) -> None:
    assert "toynet" in list_models()
    plugin = get_plugin("toynet")
    assert plugin.origin == "entry point of package toynets"
    assert plugin.description == "A one-layer toy plugin for tests."
    assert create_model("toynet")(__import__("torch").zeros(1, 3, 8, 8)).shape == (1, 1, 8, 8)


def test_broken_entry_point_is_reported_and_does_not_hide_others(installed_plugin_package: Path) -> None:
    assert "toynet" in list_models() and "unet" in list_models()
    errors = plugin_errors()
    assert "brokennet" in errors and "missing CUDA extension" in errors["brokennet"]
    assert "toynets" in errors["brokennet"]
    with pytest.raises(PluginError, match="brokennet.*missing CUDA extension"):
        get_plugin("brokennet")


def test_file_spec_builds_a_one_off_plugin(tmp_path: Path) -> None:
    path = tmp_path / "mynet.py"
    path.write_text(TINY_BUILDER)
    plugin = get_plugin(f"{path}:build")
    assert plugin.origin == f"file {path}"
    assert plugin.build(width=3) is not None


def test_module_spec_builds_a_one_off_plugin(installed_plugin_package: Path) -> None:
    assert get_plugin("toynets.nets:build").origin == "module toynets.nets"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nowhere/missing.py:build", "does not exist"),
        ("json:no_such_builder", "has no callable named 'no_such_builder'"),
        ("no_such_module_xyz:build", "cannot import 'no_such_module_xyz'"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(PluginError, match=message):
        get_plugin(spec)


def test_file_spec_that_raises_on_import_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.py"
    path.write_text("import does_not_exist_anywhere\n")
    with pytest.raises(PluginError, match=r"bad\.py.*ModuleNotFoundError"):
        get_plugin(f"{path}:build")


def test_unknown_name_lists_known_models_and_close_matches() -> None:
    with pytest.raises(UnknownModelError) as error:
        get_plugin("atunet")
    assert "Did you mean attunet" in str(error.value)
    assert "Known models:" in str(error.value) and "unet" in str(error.value)


def test_options_a_builder_does_not_take_are_refused_with_its_parameters() -> None:
    with pytest.raises(PluginError, match="init_features"):
        create_model("unet", depth=5)


def test_models_command_lists_every_plugin_with_source_and_size(installed_plugin_package: Path) -> None:
    result = CliRunner().invoke(app, ["models"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "7,763,041" in result.stdout and "7,850,565" in result.stdout
    assert "entry point of package toynets" in result.stdout
    assert "256x256" in result.stdout
    assert "brokennet" in result.stderr and "missing CUDA extension" in result.stderr


def test_help_lists_every_command_and_each_command_has_help() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    listed = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("│ ") and len(line.split()) > 2]
    assert [name for name in listed if name in COMMANDS] == list(COMMANDS)
    for name in COMMANDS:
        assert CliRunner().invoke(app, [name, "--help"]).exit_code == 0, name


def test_readme_example_plugin_runs(tmp_path: Path, isolated_registry: None) -> None:
    """The plugin example in README.md is complete: it registers, builds and returns logits of the input size."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    example = readme.split("<!-- example-plugin -->")[1].split("```python")[1].split("```")[0]
    path = tmp_path / "example_plugin.py"
    path.write_text(textwrap.dedent(example))
    get_plugin(f"{path}:build")
    import torch

    assert "tiny-unet" in list_models()
    out = create_model("tiny-unet")(torch.zeros(1, 3, 40, 56))
    assert out.shape == (1, 1, 40, 56)


def test_the_registry_imports_no_model_and_the_built_ins_come_from_medicos_own_entry_points() -> None:
    tree = ast.parse(Path(plugins.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {  # importlib.import_module("...") with a literal name
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
        and getattr(node.func, "attr", None) == "import_module"
    }
    assert not any(name and name.startswith("medico.models") for name in imported), imported
    ours = {
        ep.name: ep.value
        for ep in importlib.metadata.entry_points(group=plugins.ENTRY_POINT_GROUP)
        if ep.dist is not None and ep.dist.name == "medico"
    }
    assert ours == {"unet": "medico.models.unet:unet", "attunet": "medico.models.attunet:attunet"}
    assert {get_plugin(name).origin for name in ours} == {"built-in"}
