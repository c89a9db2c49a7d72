"""What a plugin declares beyond its builder: the normalisation and size multiple its model needs (medico applies
them), its training defaults without importing medico, option types, and a contract check before any training."""

from __future__ import annotations

import importlib.metadata
import json
import textwrap
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner, Result

from medico.cli import app
from medico.engine.adapter import adapt
from medico.errors import MedicoError
from medico.plugins import InputSpec, PluginError, get_plugin, plugin_errors

runner = CliRunner()

PACKAGE = '''
import torch
from torch import nn


class StridedNet(nn.Module):
    """Refuses sides that are not multiples of 32, as smp's encoders do; records what it was fed."""

    def __init__(self, width=4, skip=True):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.head = nn.Conv2d(width, 1, 1)
        self.seen = None

    def forward(self, x):
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise RuntimeError(f"Wrong input shape height={x.shape[-2]}, width={x.shape[-1]}: expected multiples of 32")
        self.seen = (x.detach().amin().item(), x.detach().amax().item())
        return self.head(torch.relu(self.conv(x)))


def build(width: int = 4, skip: bool = True, channels: tuple[int, ...] = (4, 8)):
    """A model needing multiples of 32 and ImageNet statistics."""
    return StridedNet(width, skip)


PLUGIN = {
    "build": build,
    "description": "declared without importing medico",
    "defaults": {"input_size": 72, "batch_size": 4, "epochs": 1},
    "normalization": "imagenet",
    "multiple": 32,
}
def undeclared(width: int = 4):
    """The same model, its needs undeclared."""
    return StridedNet(width)


BAD = {"build": build, "normalisation": "imagenet"}
'''


def invoke(*args: object) -> Result:
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "1000"})
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


@pytest.fixture
def declared_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_registry: None) -> None:
    """An installed distribution whose entry points name a declaring mapping, a bare builder and a bad mapping."""
    site = tmp_path / "site"
    (site / "stridenets").mkdir(parents=True)
    (site / "stridenets" / "__init__.py").write_text(textwrap.dedent(PACKAGE))
    dist_info = site / "stridenets-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: stridenets\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(
        "[medico.models]\nstride = stridenets:PLUGIN\nbare = stridenets:undeclared\nbad = stridenets:BAD\n"
    )
    monkeypatch.syspath_prepend(str(site))


class FirstChannel(nn.Module):
    """Returns its input's first channel as logits: what it was fed, made visible."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1] * self.scale


@pytest.mark.parametrize(
    ("normalization", "expected"),
    [("symmetric", -1.0), ("unit", 0.0), ("imagenet", (0 - 0.485) / 0.229), (((0.5,) * 3, (0.25,) * 3), -2.0)],
)
def test_a_model_sees_the_normalisation_its_plugin_declares(normalization: object, expected: float) -> None:
    black = torch.full((1, 3, 8, 8), -1.0)  # a black image in medico's [-1, 1] convention
    model = adapt(FirstChannel(), InputSpec(normalization))
    assert model(black).flatten()[0].item() == pytest.approx(expected, rel=1e-6)


def test_a_declared_multiple_is_padded_for_and_the_logits_cropped_back_with_the_weights_untouched() -> None:
    seen: list[tuple[int, ...]] = []

    class Strided(FirstChannel):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(tuple(x.shape))
            return super().forward(x)

    plain = Strided()
    keys = list(plain.state_dict())
    model = adapt(plain, InputSpec(multiple=32))
    assert tuple(model(torch.zeros(2, 3, 72, 50)).shape) == (2, 1, 72, 50)
    assert seen == [(2, 3, 96, 64)]
    assert list(model.state_dict()) == keys and isinstance(model, Strided)
    assert type(adapt(FirstChannel(), InputSpec())) is FirstChannel, "medico's own convention changes nothing"


@pytest.mark.parametrize(
    ("normalization", "multiple"),
    [("imagenett", 1), (((0.5, 0.5), (0.2, 0.2)), 1), (((0.5,) * 3, (0.0,) * 3), 1), ("unit", 0), ("unit", True)],
)
def test_a_declaration_that_cannot_be_applied_is_refused_naming_it(normalization: object, multiple: object) -> None:
    with pytest.raises(PluginError, match="normalization|multiple"):
        InputSpec(normalization, multiple)  # type: ignore[arg-type]


@pytest.mark.usefixtures("declared_package")
def test_an_entry_point_mapping_declares_defaults_normalisation_and_multiple_without_importing_medico() -> None:
    plugin = get_plugin("stride")
    assert (plugin.defaults.input_size, plugin.defaults.batch_size, plugin.defaults.epochs) == (72, 4, 1)
    assert plugin.input == InputSpec("imagenet", 32) and plugin.description == "declared without importing medico"
    assert get_plugin("bare").input == InputSpec()
    assert "'normalisation'" in plugin_errors()["bad"], "a misspelt key is reported, not ignored"
    listing = invoke("models")
    assert "72x72, ImageNet mean/std, sides multiple of 32" in " ".join(listing.output.split())


@pytest.mark.usefixtures("declared_package")
def test_a_declared_plugin_trains_at_a_size_its_model_alone_refuses(small_data: Path) -> None:
    result = invoke("train", "stride", "--input-size", "72")
    assert result.exit_code == 0, result.output
    config = json.loads((small_data / "runs" / "1-stride" / "config.json").read_text())
    assert (config["input_size"], config["sources"]["input_size"]) == (72, "command line")


@pytest.mark.usefixtures("declared_package")
def test_models_check_says_in_one_line_whether_a_plugin_keeps_the_contract() -> None:
    good = invoke("models", "--check", "stride")
    assert good.exit_code == 0 and "keeps the contract at 72x72" in good.output
    bad = invoke("models", "--check", "bare", "--input-size", "72")  # no multiple declared: 72 breaks the model
    assert bad.exit_code == 2 and "expected multiples of 32" in bad.output and "Traceback" not in bad.output
    assert len([line for line in bad.output.splitlines() if line.startswith("error:")]) == 1


@pytest.mark.usefixtures("declared_package")
def test_options_are_converted_by_the_builders_annotations() -> None:
    from medico.runs.config import RunOptions, resolve_config

    given = RunOptions.from_command_line(["skip=False", "channels=16,32,64", "width=8"])
    config = resolve_config("stride", get_plugin("stride"), given=given)
    assert config.options == {"skip": False, "channels": (16, 32, 64), "width": 8}
    for text in ("skip=maybe", "channels=16,x", "width=wide"):
        with pytest.raises(MedicoError, match=text.split("=")[0]):
            resolve_config("stride", get_plugin("stride"), given=RunOptions.from_command_line([text]))


def test_models_lists_a_huge_model_without_allocating_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_registry: None
) -> None:
    site = tmp_path / "site"
    (site / "hugenets").mkdir(parents=True)
    (site / "hugenets" / "__init__.py").write_text(
        "from torch import nn\n\ndef build():\n    return nn.Linear(100_000, 100_000)  # 40 GB of float32\n"
    )
    (site / "hugenets-0.1.dist-info").mkdir()
    (site / "hugenets-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: hugenets\nVersion: 0.1\n")
    (site / "hugenets-0.1.dist-info" / "entry_points.txt").write_text("[medico.models]\nhuge = hugenets:build\n")
    monkeypatch.syspath_prepend(str(site))
    listing = invoke("models")
    assert listing.exit_code == 0 and "10,000,100,000" in listing.output


@pytest.mark.usefixtures("declared_package")
def test_a_run_and_a_submission_record_the_plugins_distribution_and_what_it_builds_on(
    small_data: Path, tmp_path: Path
) -> None:
    dist_info = next((tmp_path / "site").glob("stridenets-*.dist-info"))
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: stridenets\nVersion: 0.1\nRequires-Dist: torch>=2.1\n"
        "Requires-Dist: numpy\nRequires-Dist: pytest; extra == 'test'\n"
    )
    assert invoke("train", "stride", "--input-size", "64").exit_code == 0
    plugin = json.loads((small_data / "runs" / "1-stride" / "environment.json").read_text())["plugin"]
    assert (plugin["name"], plugin["distribution"], plugin["version"]) == ("stride", "stridenets", "0.1")
    assert plugin["requires"] == {name: importlib.metadata.version(name) for name in ("torch", "numpy")}
    images = small_data / "test-images"
    images.mkdir()
    Image.new("RGB", (40, 30)).save(images / "a.jpg")
    submitted = invoke("submit", "--team", "T", "--images", images)
    assert submitted.exit_code == 0, submitted.output
    manifest = json.loads(next((small_data / "submissions" / "T").glob("*.json")).read_text())
    assert manifest["plugin"] == plugin
