"""A checkpoint is data: one naming code (os:system, subprocess:call, builtins:exec, a module, a file) runs
nothing in any command that loads checkpoints. The user's own ``--model SPEC`` is the only way to run a file or
module plugin's code, and a file plugin's run records the spec so that it resolves from any folder."""

from __future__ import annotations

import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from medico.cli import app
from medico.models import unet
from medico.runs.checkpoint import FORMAT, Checkpoint, save_checkpoint
from medico.submission import container_entry

SMALL_SYNTHETIC_COUNT = 8
HOSTILE = ["os:system", "subprocess:call", "builtins:exec", "module", "file"]
TINY = ["--option", "init_features=4", "--input-size", "32"]


@dataclass(frozen=True)
class Outcome:
    """What a command did: its exit status (None: it raised) and everything it printed, tracebacks included."""

    code: int | None
    output: str


def invoke(*args: object) -> Outcome:
    """Run the command line on a wide terminal (one message, one line), keeping any traceback in the output."""
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "10000"})
    if result.exception is None or isinstance(result.exception, SystemExit):
        return Outcome(result.exit_code, result.output)
    return Outcome(None, result.output + "".join(traceback.format_exception(result.exception)))


def hostile_spec(kind: str, folder: Path, marker: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, dict[str, Any]]:
    """A spec and builder options that would create ``marker`` if medico built them."""
    code = f"open({str(marker)!r}, 'w').close()\n\ndef build(**options):\n    open({str(marker)!r}, 'w').close()\n"
    if kind == "os:system":
        return kind, {"command": f"touch {marker}"}
    if kind == "subprocess:call":
        return kind, {"args": ["touch", str(marker)]}
    if kind == "builtins:exec":
        return kind, {"source": f"open({str(marker)!r}, 'w').close()"}
    if kind == "module":
        name = f"hostile_{uuid.uuid4().hex}"
        (folder / f"{name}.py").write_text(code)
        monkeypatch.syspath_prepend(str(folder))
        return f"{name}:build", {}
    path = folder / "evil_plugin.py"
    path.write_text(code)
    return f"{path}:build", {}


def craft(path: Path, spec: str, options: dict[str, Any], **fields: Any) -> Path:
    """A checkpoint file written by hand (``torch.save``), as a participant could, naming ``spec``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "model_spec": spec,
        "model_options": options,
        "input_size": 32,
        "model": {"weight": torch.zeros(1)},
        "config": {"model": spec, "options": options, "data": None, "split": "auto", "seed": 0},
        "training": {},
        "metrics": {},
        **fields,
    }
    torch.save(payload, path)
    return path


def images(folder: Path) -> Path:
    """A folder holding one small test image."""
    folder.mkdir()
    Image.fromarray(np.full((40, 48, 3), 90, np.uint8)).save(folder / "frame.jpg")
    return folder


def container(*args: object) -> Outcome:
    """The task 2 container entry's ``main`` (what ``docker run`` executes), its stderr and any traceback."""
    import contextlib
    import io

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            code = container_entry.main([str(a) for a in args])
    except Exception:
        return Outcome(None, err.getvalue() + traceback.format_exc())
    return Outcome(code, err.getvalue())


def _evaluate(ws: Path, ck: Path) -> Outcome:
    return invoke("evaluate", ck, "--device", "cpu")


def _predict(ws: Path, ck: Path) -> Outcome:
    return invoke("predict", ck, images(ws / "in"), "--out", ws / "out", "--device", "cpu")


def _bench(ws: Path, ck: Path) -> Outcome:
    return invoke("bench", ck, "--device", "cpu", "--repeats", "1", "--warmup", "0")


def _submit_task1(ws: Path, ck: Path) -> Outcome:
    return invoke("submit", "--team", "T", "--checkpoint", ck, "--images", images(ws / "in"), "--device", "cpu")


def _submit_task2(ws: Path, ck: Path) -> Outcome:
    return invoke("submit", "--team", "T", "--task", "efficiency", "--checkpoint", ck)


def _show(ws: Path, ck: Path) -> Outcome:
    run_dir = ws / "runs" / "1-unet"
    (run_dir / "checkpoints").mkdir(parents=True)
    ck.rename(run_dir / "checkpoints" / "best.pt")
    (run_dir / "per_image.csv").write_text("name,iou,dice\nsynthetic-0000,0.5,0.6\n")
    return invoke("show", "1", "--device", "cpu")


def _container(ws: Path, ck: Path) -> Outcome:
    return container("--input", images(ws / "in"), "--output", ws / "out", "--weights", ck, "--device", "cpu")


COMMANDS: dict[str, Callable[[Path, Path], Outcome]] = {
    "evaluate": _evaluate,
    "predict": _predict,
    "bench": _bench,
    "submit task 1": _submit_task1,
    "submit task 2": _submit_task2,
    "show": _show,
    "task 2 container entry": _container,
}


def assert_refused(outcome: Outcome, marker: Path, *named: str) -> None:
    """Nothing ran; the command failed with one message line naming ``named``, and no traceback."""
    assert not marker.exists(), f"the checkpoint's code ran: {outcome.output}"
    assert outcome.code not in (0, None), outcome.output
    assert "Traceback" not in outcome.output, outcome.output
    [message] = [line for line in outcome.output.splitlines() if line.startswith("error:")]
    for text in named:
        assert text in message, (text, message)


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("kind", HOSTILE)
def test_a_checkpoint_naming_code_runs_nothing_and_says_to_pass_model(
    command: str, kind: str, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = workspace / "MARKER"
    spec, options = hostile_spec(kind, workspace, marker, monkeypatch)
    checkpoint = craft(workspace / "best.pt", spec, options)
    outcome = COMMANDS[command](workspace, checkpoint)
    assert_refused(outcome, marker, spec, "--model", "best.pt")


@pytest.mark.parametrize("kind", HOSTILE)
def test_resume_trains_only_the_model_the_user_typed(
    kind: str, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--resume`` trains what last.pt's config names: a run naming code, openly or behind a plain ``unet`` spec,
    is refused when the user types ``unet``."""
    marker = workspace / "MARKER"
    spec, options = hostile_spec(kind, workspace, marker, monkeypatch)
    last = workspace / "runs" / "1-unet" / "checkpoints" / "last.pt"
    craft(last, spec, options)
    assert_refused(invoke("run", "unet", "--resume", "1", "--no-leaderboard"), marker, spec, "trains")
    config = {"model": spec, "options": options, "data": None, "split": "auto", "seed": 0, "epochs": 2}
    craft(last, "unet", {}, config=config)
    assert_refused(invoke("run", "unet", "--resume", "1", "--no-leaderboard"), marker, spec, "last.pt")


@pytest.mark.parametrize("kind", HOSTILE)
def test_pretrained_weights_are_read_as_tensors_and_never_build_the_files_model(
    kind: str, small_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = small_data / "MARKER"
    spec, options = hostile_spec(kind, small_data, marker, monkeypatch)
    checkpoint = craft(small_data / "hostile.pt", spec, options)
    outcome = invoke("run", "unet", *TINY, "--epochs", "1", "--pretrained", checkpoint, "--no-leaderboard")
    assert_refused(outcome, marker, "--pretrained", "no tensor")


PLUGIN = (
    "from medico.models import unet\n\n\n"
    "def build(init_features=4):\n    return unet(init_features=init_features)\n"
)
"""A file plugin: the tiny U-Net under another name."""


def test_a_file_plugin_run_is_scored_from_another_folder_only_with_its_spec_given(
    small_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (small_data / "plugins.py").write_text(PLUGIN)
    trained = invoke("train", "plugins.py:build", "--input-size", "32", "--epochs", "1")
    assert trained.code == 0, trained.output
    spec = f"{(small_data / 'plugins.py').resolve()}:build"
    resumed = invoke("train", "plugins.py:build", "--resume", "1")  # the spec typed again, as it was recorded
    assert resumed.code == 0 and "resuming" in resumed.output, resumed.output

    elsewhere = small_data / "elsewhere"
    elsewhere.mkdir()
    marker = elsewhere / "MARKER"
    (elsewhere / "plugins.py").write_text(f"open({str(marker)!r}, 'w').close()\n" + PLUGIN)
    monkeypatch.chdir(elsewhere)
    refused = invoke("evaluate", "1", "--device", "cpu")
    assert_refused(refused, marker, f"--model {spec!r}", "best.pt")
    scored = invoke("evaluate", "1", "--device", "cpu", "--model", spec, "--out", elsewhere / "scores")
    assert scored.code == 0, scored.output
    assert (elsewhere / "scores" / "metrics.json").is_file() and not marker.exists()


def test_a_checkpoint_naming_a_registered_model_needs_no_model_option(workspace: Path) -> None:
    torch.manual_seed(0)
    weights = unet(init_features=4).state_dict()
    checkpoint = save_checkpoint(workspace / "unet.pt", Checkpoint("unet", {"init_features": 4}, 32, weights))
    outcome = invoke("predict", checkpoint, images(workspace / "in"), "--out", workspace / "out", "--device", "cpu")
    assert outcome.code == 0, outcome.output
    assert (workspace / "out" / "frame.png").is_file()


def test_options_that_would_build_a_model_far_larger_than_the_file_are_refused(workspace: Path) -> None:
    """init_features=10**6 would ask for terabytes; the meta-device comparison refuses it before any allocation."""
    weights = unet(init_features=4).state_dict()
    checkpoint = save_checkpoint(workspace / "big.pt", Checkpoint("unet", {"init_features": 10**6}, 32, weights))
    outcome = invoke("bench", checkpoint, "--device", "cpu")
    assert_refused(outcome, workspace / "MARKER", "weights do not fit model 'unet'", "of another shape")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("model_spec", 5),
        ("model_spec", ""),
        ("model_options", ["init_features"]),
        ("model_options", {1: 2}),
        ("input_size", -1),
        ("input_size", "32"),
        ("input_size", 10**9),
        ("model", [torch.zeros(1)]),
        ("model", {"weight": "zeros"}),
        ("config", "x"),
    ],
)
def test_a_malformed_checkpoint_field_is_refused_naming_the_file_and_field(
    field: str, value: Any, workspace: Path
) -> None:
    torch.manual_seed(0)
    fields = {"model": unet(init_features=4).state_dict(), "config": {}, field: value}
    checkpoint = craft(workspace / "odd.pt", "unet", {"init_features": 4}, **fields)
    outcome = invoke("predict", checkpoint, images(workspace / "in"), "--out", workspace / "out", "--device", "cpu")
    assert_refused(outcome, workspace / "MARKER", "odd.pt", field)
