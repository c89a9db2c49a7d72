"""Review of the plugin declarations (issue 15) as a hostile participant and a careless user would use them: the input
fitting of a plugin's model, entry-point mappings, provenance and scoring against a subset of a truth folder."""

from __future__ import annotations

import copy
import io
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner, Result

from medico.cli import app
from medico.engine.adapter import adapt
from medico.plugins import InputSpec

runner = CliRunner()


def invoke(*args: object) -> Result:
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "1000"})
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


class FirstChannel(nn.Module):
    """Returns its input's first channel as logits: what it was fed, made visible."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1] * self.scale


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
