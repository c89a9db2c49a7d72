"""Hostile input to `medico run`, `train`, `evaluate` and `bench`: bad option values and model plugins that break
the contract (logits (B, 1, H, W), no sigmoid inside) end with one line naming the problem, never a traceback, and
never pass as a valid run."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner, Result

from medico.cli import app
from medico.leaderboard import LeaderboardStore
from medico.runs.checkpoint import load_checkpoint, save_checkpoint

runner = CliRunner()
TINY = ["--option", "init_features=4", "--input-size", "32", "--epochs", "1"]


def invoke(*args: object) -> Result:
    """The command line on a wide terminal (rich wraps nothing); a traceback-free exit is asserted here."""
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "10000"})
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return result


def refused(result: Result, *fragments: str) -> str:
    """The one error line of a refused command, checked to name every fragment."""
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def no_run_folder(workspace: Path) -> bool:
    runs = workspace / "runs"
    return not runs.exists() or not any(runs.iterdir())


@pytest.mark.parametrize("command", ["run", "train"])
@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--input-size", "100000"], "--input-size"),
        (["--input-size", "0"], "--input-size"),
        (["--input-size", "-1"], "--input-size"),
        (["--lr", "nan"], "--lr"),
        (["--lr", "inf"], "--lr"),
        (["--lr", "-1"], "--lr"),
        (["--lr", "0"], "--lr"),
        (["--seed", "-1"], "--seed"),
        (["--seed", str(2**70)], "--seed"),
        (["--batch-size", "0"], "--batch-size"),
        (["--batch-size", str(10**20)], "--batch-size"),
        (["--epochs", "0"], "--epochs"),
        (["--epochs", "-1"], "--epochs"),
        (["--workers", "100000"], "--workers"),
        (["--option", "init_features=abc"], "--option init_features"),
        (["--option", "init_features=nan"], "--option init_features"),
        (["--option", "init_features=-3"], "init_features"),
        (["--option", "nosuch=1"], "nosuch"),
    ],
)
def test_a_bad_option_value_is_one_line_naming_it_and_no_run_folder(
    small_data: Path, command: str, args: list[str], named: str
) -> None:
    result = invoke(command, "unet", *TINY, *args)
    refused(result, named)
    assert no_run_folder(small_data)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("lr = nan\n", "lr"),
        ("input_size = 100000\n", "input_size"),
        ("seed = -1\n", "seed"),
        ("weight_decay = inf\n", "weight_decay"),
        ("min_lr = nan\n", "min_lr"),
        ('[options]\ninit_features = "abc"\n', "[options] init_features"),
    ],
)
def test_a_bad_value_in_a_config_file_names_the_file_and_key(small_data: Path, text: str, named: str) -> None:
    config = small_data / "bad.toml"
    config.write_text(text)
    result = invoke("train", "unet", *TINY, "--config", config)
    refused(result, str(config), named)
    assert no_run_folder(small_data)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--seeds", f"1,{2**70}"], "--seeds"),
        (["--seeds", "1,4294967296"], "--seeds"),
        (["--folds", str(10**20)], "--folds"),
        (["--nproc", "100000"], "--nproc"),
    ],
)
def test_sweep_and_process_counts_are_refused_before_anything_trains(
    small_data: Path, args: list[str], named: str
) -> None:
    refused(invoke("run", "unet", *TINY, *args), named)
    assert no_run_folder(small_data)


def test_resuming_checks_the_values_it_may_change(small_data: Path) -> None:
    assert invoke("train", "unet", *TINY).exit_code == 0
    refused(invoke("train", "unet", "--resume", "latest", "--epochs", "-1"), "--epochs")


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda c: c.config.update(batch_size=10**12), "batch_size"),
        (lambda c: c.config.update(lr=float("nan")), "lr"),
        (lambda c: c.config.update(epochs="many"), "epochs"),
        (lambda c: c.config.update(team="\x1b[31mred"), "team"),
        (lambda c: c.training.update(epoch="soon"), "training state"),
        (lambda c: c.training.update(optimizer={"state": 3}), "training state"),
        (lambda c: c.training.update(history=[{"epoch": "x", "nonsense": 1}]), "training state"),
    ],
    ids=["huge-batch", "nan-lr", "text-epochs", "escape-team", "text-epoch", "bad-optimizer", "bad-history"],
)
def test_resuming_a_tampered_last_checkpoint_is_one_line_naming_it(small_data: Path, edit, named: str) -> None:
    assert invoke("train", "unet", *TINY).exit_code == 0
    last = small_data / "runs" / "1-unet" / "checkpoints" / "last.pt"
    checkpoint = load_checkpoint(last)
    edit(checkpoint)
    save_checkpoint(last, checkpoint)
    refused(invoke("train", "unet", "--resume", "latest", "--epochs", "2"), str(last), named)


MODEL = '''import torch
from torch import nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return {output}


def build():
    return Model()
'''


def plugin(folder: Path, output: str) -> str:
    """The spec of a one-off plugin file: a one-convolution model returning ``output`` (of its logits ``y``)."""
    path = folder / "mynet.py"
    path.write_text(MODEL.format(output=output))
    return f"{path}:build"


def test_a_builder_that_raises_is_one_line_naming_the_plugin_and_its_error(small_data: Path) -> None:
    path = small_data / "broken.py"
    path.write_text('def build():\n    raise RuntimeError("needs the fused CUDA kernels")\n')
    for command in ("run", "train", "bench"):
        refused(invoke(command, f"{path}:build"), "broken.py", "RuntimeError: needs the fused CUDA kernels")
    assert no_run_folder(small_data)


@pytest.mark.parametrize(
    ("output", "found"),
    [
        ("(y, y)", "returned a tuple of 2"),
        ("{'out': y}", "returned a dict of 1"),
        ("torch.cat([y, -y], 1)", "returned shape (2, 2, 32, 32)"),
        ("y[:, :, ::2, ::2]", "returned shape (2, 1, 16, 16)"),
        ("(y > 0).long()", "tensor of torch.int64"),
        ("self.conv(x[:, :2])", "raised RuntimeError"),
        ("torch.sigmoid(y)", "out of sigmoid"),
        ("nn.functional.softmax(torch.cat([y, -y], 1), dim=1)[:, 1:]", "out of softmax"),
        ("y * float('nan')", "NaN or infinite"),
    ],
)
def test_a_model_breaking_the_contract_is_refused_before_training(small_data: Path, output: str, found: str) -> None:
    result = invoke("run", plugin(small_data, output), "--input-size", "32", "--epochs", "1")
    refused(result, "mynet.py", found, "logits (B, 1, H, W)", "no sigmoid inside")
    assert no_run_folder(small_data)


def test_a_model_whose_training_output_breaks_the_contract_stops_at_the_first_step(small_data: Path) -> None:
    spec = plugin(small_data, "(y, y) if self.training and len(x) > 2 else y")  # deep supervision, say
    refused(invoke("train", spec, "--input-size", "32", "--epochs", "1"), "returned a tuple of 2", "(B, 1, H, W)")


@pytest.mark.parametrize(
    ("output", "found"),
    [
        ("y * float('nan') if not self.training and len(x) > 2 else y", "NaN or infinite on 5 of 5 images"),
        ("1 / (1 + torch.exp(-8 * y))", "lie in [0, 1]"),
    ],
)
def test_a_model_whose_evaluation_outputs_are_not_logits_is_no_valid_run(
    small_data: Path, output: str, found: str
) -> None:
    """NaN logits on the validation images only, or a sigmoid written out by hand, both fine at the probe."""
    result = invoke("run", plugin(small_data, output), "--input-size", "32", "--epochs", "1")
    refused(result, found, "logits (B, 1, H, W)")
    assert LeaderboardStore().entries() == []


def test_evaluating_a_checkpoint_with_nan_weights_stops_naming_the_images(run_dir: Path) -> None:
    path = run_dir / "checkpoints" / "best.pt"
    checkpoint = load_checkpoint(path)
    checkpoint.model["conv.weight"].fill_(float("nan"))
    save_checkpoint(path, checkpoint)
    line = refused(invoke("evaluate", "1", "--device", "cpu"), "NaN or infinite on 40 of 40 images")
    assert "synthetic-" in line
    assert not (run_dir / "evaluations").exists()


def test_predicting_or_submitting_with_nan_weights_writes_no_mask(run_dir: Path, workspace: Path) -> None:
    path = run_dir / "checkpoints" / "best.pt"
    checkpoint = load_checkpoint(path)
    checkpoint.model["conv.weight"].fill_(float("nan"))
    save_checkpoint(path, checkpoint)
    images = workspace / "images"
    images.mkdir()
    Image.new("RGB", (40, 30)).save(images / "a.jpg")
    refused(invoke("predict", "1", images, "--out", workspace / "masks", "--device", "cpu"), "NaN")
    assert not (workspace / "masks").exists() or not list((workspace / "masks").iterdir())
    refused(invoke("submit", "--team", "T", "--images", images, "--device", "cpu"), "NaN")
    assert not list(workspace.glob("submissions/T/*.zip"))


@pytest.mark.parametrize(
    ("args", "named"), [(["--input-size", "100000"], "--input-size"), (["--batch-size", "100000"], "--batch-size")]
)
def test_bench_refuses_sizes_that_cannot_be_allocated(workspace: Path, args: list[str], named: str) -> None:
    refused(invoke("bench", plugin(workspace, "y"), "--device", "cpu", *args), named)


def test_bench_refuses_a_model_breaking_the_contract(workspace: Path) -> None:
    refused(invoke("bench", plugin(workspace, "(y, y)"), "--device", "cpu"), "returned a tuple of 2")
