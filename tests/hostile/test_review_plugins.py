"""Review of the plugin declarations (issue 15) as a hostile participant and a careless user would use them: the input
fitting of a plugin's model, entry-point mappings, provenance and scoring against a subset of a truth folder."""

from __future__ import annotations

import copy
import io
import json
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner, Result

from medico.cli import app
from medico.engine.adapter import adapt
from medico.plugins import InputSpec, PluginError
from medico.submission import mask_png
from tests.test_plugin_declarations import FirstChannel

runner = CliRunner()


def invoke(*args: object) -> Result:
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "1000"})
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


BUILDERS = '''
import torch
from torch import nn
from medico.plugins import register_model


class FirstChannel(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return x[:, :1] * self.scale


@register_model("r4-compiled", normalization="unit")
def compiled():
    return torch.compile(FirstChannel(), backend="eager")  # its forward is set on the instance


@register_model("r4-scripted", normalization="unit")
def scripted():
    return torch.jit.script(FirstChannel())


@register_model("r4-wrapped", normalization="unit")
def wrapped():
    model = FirstChannel()
    model.forward = model.forward  # as wrappers that convert outputs do
    return model
'''


@pytest.mark.usefixtures("isolated_registry")
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("builder", ["compiled", "scripted", "wrapped"])
def test_a_model_whose_forward_the_adapter_cannot_reach_is_refused_not_fed_unnormalised_input(
    tmp_path: Path, builder: str
) -> None:
    plugin_file = tmp_path / "builders.py"
    plugin_file.write_text(textwrap.dedent(BUILDERS))
    checked = invoke("models", "--check", f"{plugin_file}:{builder}")
    assert checked.exit_code == 2, checked.output
    assert "eager module" in " ".join(checked.output.split()) and "Traceback" not in checked.output


def test_an_adapted_model_saved_whole_or_deep_copied_stays_adapted() -> None:
    black = torch.full((1, 3, 40, 40), -1.0)  # black in medico's [-1, 1]: 0 in the declared [0, 1]
    model = adapt(FirstChannel(), InputSpec("unit", 32))
    buffer = io.BytesIO()
    torch.save(model, buffer)  # what a user's own script does with the model medico built
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    for copied in (loaded, copy.deepcopy(model)):
        assert isinstance(copied, FirstChannel) and copied.scale is not model.scale
        output = copied(black)
        assert tuple(output.shape) == (1, 1, 40, 40) and output.min().item() == 0.0


HOSTILE_PACKAGE = '''
from collections.abc import Mapping

from torch import nn


def build(width: int = 4):
    """A one-layer model."""
    return nn.Conv2d(3, 1, 3, padding=1)


class Raising(Mapping):
    """Looks like a declaration; raises when read."""

    def __getitem__(self, key):
        raise RuntimeError("no declaration here")

    def __iter__(self):
        raise RuntimeError("no declaration here")

    def __len__(self):
        return 1


class Exiting(Raising):
    def __iter__(self):
        raise SystemExit(3)


RAISING, EXITING = Raising(), Exiting()
TEXT_SIZE = {"build": build, "defaults": {"input_size": "72"}}
HUGE_SIZE = {"build": build, "defaults": {"input_size": 10**9}}
BOOL_EPOCHS = {"build": build, "defaults": {"epochs": True}}
'''


def _install(site: Path, name: str, entry_points: dict[str, str], metadata: bytes | None = None) -> None:
    """A distribution ``name`` in ``site`` whose ``medico.models`` entry points are ``entry_points``."""
    dist_info = site / f"{name}-0.1.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_bytes(metadata or f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n".encode())
    lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
    (dist_info / "entry_points.txt").write_text(f"[medico.models]\n{lines}")


@pytest.fixture
def hostile_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_registry: None) -> Path:
    site = tmp_path / "site"
    (site / "hostilenets").mkdir(parents=True)
    (site / "hostilenets" / "__init__.py").write_text(textwrap.dedent(HOSTILE_PACKAGE))
    names = ("RAISING", "EXITING", "TEXT_SIZE", "HUGE_SIZE", "BOOL_EPOCHS")
    _install(site, "hostilenets", {name.lower().replace("_", "-"): f"hostilenets:{name}" for name in names})
    monkeypatch.syspath_prepend(str(site))
    return site


def test_a_mapping_that_raises_when_read_is_reported_by_name_and_every_other_plugin_still_lists(
    hostile_package: Path,
) -> None:
    listing = invoke("models")
    assert listing.exit_code == 0, listing.output
    text = " ".join(listing.output.split())
    assert "unet" in text and "RuntimeError: no declaration here" in text and "SystemExit: 3" in text
    assert invoke("models", "--check", "raising").exit_code == 2


@pytest.mark.parametrize(
    ("plugin", "expected"),
    [("text-size", "input_size must be int, got '72'"), ("huge-size", "input_size must be an integer from 1 to 2,048"),
     ("bool-epochs", "epochs must be int, got True")],
)
def test_a_plugins_training_defaults_are_checked_as_a_config_files_are(
    hostile_package: Path, plugin: str, expected: str
) -> None:
    for command in (("models", "--check", plugin), ("bench", plugin, "--device", "cpu")):
        refused = invoke(*command)
        assert refused.exit_code == 2, refused.output
        text = " ".join(refused.output.split())
        assert f"plugin defaults: {expected}" in text and "--input-size" not in text, text


def test_a_distribution_whose_metadata_cannot_be_read_stops_neither_the_registry_nor_a_runs_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_registry: None, small_data: Path
) -> None:
    site = tmp_path / "site"
    (site / "latin1nets").mkdir(parents=True)
    (site / "latin1nets" / "__init__.py").write_text(textwrap.dedent(HOSTILE_PACKAGE))
    broken = b"Metadata-Version: 2.1\nName: latin1nets\nVersion: 0.1\nAuthor: J\xf6rg\n"  # Latin-1, not UTF-8
    _install(site, "latin1nets", {"latin1": "latin1nets:build"}, broken)
    monkeypatch.syspath_prepend(str(site))
    listing = invoke("models")
    assert listing.exit_code == 0 and "latin1" in listing.output and "unet" in listing.output, listing.output
    plugin_file = tmp_path / "mine.py"
    plugin_file.write_text("from torch import nn\n\ndef build():\n    return nn.Conv2d(3, 1, 3, padding=1)\n")
    trained = invoke("train", f"{plugin_file}:build", "--input-size", "32", "--epochs", "1")
    assert trained.exit_code == 0, trained.output
    (environment,) = (small_data / "runs").glob("*/environment.json")
    assert json.loads(environment.read_text())["plugin"]["distribution"] is None  # a file: no distribution


@pytest.mark.parametrize(
    "normalization",
    [
        ((0.5,) * 3, (1e-30,) * 3),  # every input infinite after scaling
        ((0.5,) * 3, (5e-324,) * 3),
        ((123.7, 116.3, 103.5), (58.4, 57.1, 57.4)),  # 0-255 statistics: every image squashed to about -2.1
    ],
)
def test_a_normalisation_no_image_could_have_is_refused_when_declared(normalization: object) -> None:
    with pytest.raises(PluginError, match="divide 0-255 ones by 255"):
        InputSpec(normalization)  # type: ignore[arg-type]


@pytest.mark.parametrize("archived", [[], ["case0"]])
def test_scoring_against_an_empty_list_of_names_is_refused_naming_it(workspace: Path, archived: list[str]) -> None:
    truth = workspace / "truth"
    truth.mkdir()
    mask = np.zeros((40, 48), bool)
    mask[5:20, 5:30] = True
    for name in ("case0", "case1"):
        (truth / f"{name}.png").write_bytes(mask_png(mask))
    archive = workspace / "T_task1_run1.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for name in archived:
            zipped.writestr(f"masks/{name}.png", (truth / f"{name}.png").read_bytes())
    names = workspace / "val.txt"
    names.write_text("# nothing chosen yet\n")
    refused = invoke("score", archive, "--truth", truth, "--team", "T", "--names", names)
    assert refused.exit_code == 2 and "no images to score" in " ".join(refused.output.split()), refused.output


def test_an_option_outside_a_literal_annotation_is_refused_before_training(
    tmp_path: Path, isolated_registry: None
) -> None:
    from medico.errors import MedicoError
    from medico.plugins import get_plugin
    from medico.runs.config import RunOptions, resolve_config

    plugin_file = tmp_path / "choices.py"
    plugin_file.write_text(
        "from typing import Literal\nfrom torch import nn\n\n"
        "def build(attention: Literal['scse', 'none'] = 'none', depth: Literal[3, 4, 5] = 5) -> nn.Module:\n"
        "    return nn.Conv2d(3, 1, 1)\n"
    )
    spec = f"{plugin_file}:build"
    given = RunOptions.from_command_line(["attention=scse", "depth=4"])
    assert resolve_config(spec, get_plugin(spec), given=given).options == {"attention": "scse", "depth": 4}
    for typo in ("attention=sce", "depth=6", "depth=4.0"):
        with pytest.raises(MedicoError, match=r"--option \w+ must be Literal\["):
            resolve_config(spec, get_plugin(spec), given=RunOptions.from_command_line([typo]))


@pytest.mark.parametrize(
    "source", [{"url": 123}, {"url": "https://example.org/w.pt", "sha256": "abc"}, {"path": 5}], ids=str
)
def test_pretrained_weights_that_could_only_fail_when_fetched_are_refused_when_declared(source: dict) -> None:
    from medico.plugins import plugin_from_mapping

    declaration = {"build": lambda: FirstChannel(), "pretrained": {"mine": source}}
    with pytest.raises(PluginError, match="'pretrained' must map names"):
        plugin_from_mapping(declaration, name="weighted", origin="entry point of package weighted")
