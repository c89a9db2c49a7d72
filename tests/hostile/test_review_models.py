"""Review of issue 12 (checkpoints, plugins, run records, options), as a hostile participant and a careless user.

A checkpoint of a few kilobytes never makes medico allocate far more than the file holds; what a checkpoint, a
copied run folder or an installed plugin holds is refused on one line naming it, never a traceback, never shown raw,
never scored as a run's validation when it is not, and never fetched or run.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from medico.data import Split, open_dataset, resolve_split
from medico.models import unet
from medico.runs.checkpoint import FORMAT
from medico.runs.dataset import DataRecord
from tests.hostile.test_checkpoint_runs_no_code import COMMANDS, Outcome, invoke

SMALL_SYNTHETIC_COUNT = 8


def payload(**fields: Any) -> dict[str, Any]:
    """What ``torch.save`` writes for a tiny U-Net checkpoint, with ``fields`` replaced, as a participant could."""
    torch.manual_seed(0)
    options = {"init_features": 4}
    return {
        "format": FORMAT,
        "model_spec": "unet",
        "model_options": options,
        "input_size": 32,
        "model": unet(**options).state_dict(),
        "config": {"model": "unet", "options": options, "data": None, "split": "auto", "seed": 0},
        "training": {},
        "metrics": {},
        **fields,
    }


def refused(outcome: Outcome, *named: str) -> str:
    """The command failed with one message line naming ``named``, and no traceback; returns the message."""
    assert outcome.code not in (0, None), outcome.output
    assert "Traceback" not in outcome.output, outcome.output
    [message] = [line for line in outcome.output.splitlines() if line.startswith("error:")]
    for text in named:
        assert text in message, (text, message)
    return message


def expanded_weights(features: int) -> dict[str, torch.Tensor]:
    """The state_dict of ``unet(init_features=features)`` in shape, every tensor one stored zero seen through a view."""
    with torch.device("meta"):
        shapes = unet(init_features=features).state_dict()
    return {k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in shapes.items()}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_checkpoint_of_kilobytes_cannot_make_medico_build_a_model_of_hundreds_of_megabytes(
    command: str, workspace: Path
) -> None:
    """Options for a huge model and weights that are one stored zero each, expanded to the model's shapes: the file
    is about 30 KB, the model it asks for 124 MB (and 32 GB with init_features=1024)."""
    checkpoint = workspace / "best.pt"
    features = 64
    options = {"init_features": features}
    config = {"model": "unet", "options": options, "data": None, "split": "auto", "seed": 0}
    torch.save(payload(model=expanded_weights(features), model_options=options, config=config), checkpoint)
    assert checkpoint.stat().st_size < 100_000
    refused(COMMANDS[command](workspace, checkpoint), "best.pt", "more than the file")


@pytest.mark.parametrize("command", ["evaluate", "predict", "task 2 container entry"])
def test_a_zip_bomb_checkpoint_is_refused_before_it_is_unpacked(command: str, workspace: Path) -> None:
    """64 MiB of zeros deflated into a checkpoint of under a megabyte (torch reads compressed members)."""
    plain, checkpoint = workspace / "plain.pt", workspace / "best.pt"
    torch.save(payload(training={"padding": torch.zeros(64 << 20, dtype=torch.uint8)}), plain)
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(checkpoint, "w", zipfile.ZIP_DEFLATED) as bomb:
        for member in source.infolist():
            bomb.writestr(member.filename, source.read(member.filename))
    plain.unlink()
    assert checkpoint.stat().st_size < 1 << 20
    refused(COMMANDS[command](workspace, checkpoint), "best.pt", "unpack to", "more than the file")


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"config": {"model": "unet", "data": 5, "split": "auto"}}, "data must be str"),
        ({"config": {"model": "unet", "data": None, "split": ["auto"]}}, "split must be str"),
        ({"config": {"model": "unet", "data": torch.zeros(2)}}, "config must be a dict of plain values"),
        ({"model_options": {"init_features": torch.tensor(4)}, "config": {}}, "model_options must be"),
        ({"metrics": {"data_record": torch.zeros(3)}}, "metrics must be a dict of plain values"),
    ],
    ids=["data a number", "split a list", "data a tensor", "an option a tensor", "record a tensor"],
)
@pytest.mark.parametrize("command", ["evaluate", "show"])
def test_a_checkpoint_whose_settings_are_of_the_wrong_type_is_one_line_naming_the_field(
    fields: dict[str, Any], named: str, command: str, small_data: Path
) -> None:
    checkpoint = small_data / "best.pt"
    torch.save(payload(**fields), checkpoint)
    refused(COMMANDS[command](small_data, checkpoint), "best.pt", named)


def copied_run(workspace: Path, edit: Callable[[Split], Split], split: str = "auto") -> Path:
    """A run folder as another participant could hand it over: a tiny U-Net's best.pt, per_image.csv, and a
    dataset.json whose split ``edit`` changed (its digest made to match, as anyone can)."""
    run = workspace / "runs" / "1-unet"
    dataset = open_dataset(None)
    config = {"model": "unet", "options": {"init_features": 4}, "data": None, "split": split, "seed": 0}
    (run / "checkpoints").mkdir(parents=True)
    torch.save(payload(config=config), run / "checkpoints" / "best.pt")
    record = DataRecord.of(dataset, edit(resolve_split(dataset, "auto")))
    (run / "dataset.json").write_text(json.dumps(record.as_dict()))
    rows = [f"{name},0.5,0.5,0.5,0.5,0.5,0.5" for name in record.split.val]
    (run / "per_image.csv").write_text("name,dice,iou,precision,recall,f2,accuracy\n" + "\n".join(rows) + "\n")
    return run


@pytest.mark.parametrize(
    ("edit", "split"),
    [
        (lambda s: Split(s.name, s.val, s.train), "auto"),
        (lambda s: Split(s.name, s.train[1:], s.val + s.train[:1]), "auto"),
        (lambda s: Split("files", s.train, s.val + s.train[:1]), "/a/split/folder/gone/since"),
    ],
    ids=["train and val swapped", "a training image held out", "split folder gone, a training image held out"],
)
@pytest.mark.parametrize("command", ["evaluate", "show"])
def test_a_run_record_edited_to_hold_out_training_images_is_never_scored_as_validation(
    edit: Callable[[Split], Split], split: str, command: str, small_data: Path
) -> None:
    copied_run(small_data, edit, split)
    refused(invoke(command, "1", "--device", "cpu"), "1-unet", "train")
    assert not (small_data / "runs" / "1-unet" / "evaluations").exists()


@pytest.mark.parametrize(
    ("rows", "named"),
    [
        ("name,dice,iou\nsynthetic-0000,0.5,abc\n", "iou"),
        ("name,dice,iou\nsynthetic-0000,0.5,nan\n", "iou"),
        ("name,dice,iou\nsynthetic-0000,0.5,7\n", "iou"),
        ("name,dice\nsynthetic-0000,0.5\n", "iou"),
        ("name,dice,iou\n", "name"),
        ("", "per_image.csv"),
        ("name,dice,iou\n,0.5,0.5\n", "name"),
    ],
    ids=["text", "nan", "above 1", "no iou column", "no rows", "empty file", "a row without a name"],
)
def test_a_hand_edited_per_image_csv_is_one_line_naming_it_in_show_and_compare(
    rows: str, named: str, small_data: Path
) -> None:
    run = copied_run(small_data, lambda split: split)
    (run / "per_image.csv").write_text(rows)
    for args in (["show", "1", "--device", "cpu"], ["compare", "1", "1"]):
        refused(invoke(*args), "per_image.csv", named)


def test_show_never_draws_training_images_listed_in_a_per_image_csv(small_data: Path) -> None:
    run = copied_run(small_data, lambda split: split)
    training = json.loads((run / "dataset.json").read_text())["split"]["train"]
    (run / "per_image.csv").write_text("name,dice,iou\n" + "".join(f"{name},0.9,0.9\n" for name in training))
    refused(invoke("show", "1", "--device", "cpu"), "per_image.csv", "not validation images", training[0])
    assert not (run / "overlays").exists()


CLIPBOARD = "\x1b]52;c;cHduZWQ=\x1b\\"
"""OSC 52: a terminal receiving it raw puts 'pwned' in the user's clipboard."""


@pytest.mark.parametrize("command", ["evaluate", "show", "compare", "submit"])
def test_a_copied_run_folder_named_with_an_escape_sequence_never_reaches_the_terminal_raw(
    command: str, small_data: Path
) -> None:
    run = copied_run(small_data, lambda split: split)
    run = run.rename(run.with_name(f"1-unet{CLIPBOARD}"))
    args = {
        "evaluate": ["evaluate", "1", "--device", "cpu"],
        "show": ["show", "1", "--device", "cpu", "--count", "1"],
        "compare": ["compare", "1", "1"],
        "submit": ["submit", "--team", "T", "--checkpoint", run / "missing.pt"],
    }[command]
    outcome = invoke(*args)
    assert "Traceback" not in outcome.output, outcome.output
    assert "1-unet" in outcome.output or "missing.pt" in outcome.output, outcome.output
    assert "\x1b" not in outcome.output, outcome.output
    assert "\\x1b]52" in outcome.output  # shown, as its escape


@pytest.mark.usefixtures("isolated_registry")
def test_an_installed_plugin_exiting_on_import_is_reported_and_hides_no_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A package whose module calls sys.exit when imported: before, every command exited silently with its code."""
    site = tmp_path / "site"
    (site / "quitter-1.0.dist-info").mkdir(parents=True)
    (site / "quitter-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: quitter\nVersion: 1.0\n")
    (site / "quitter-1.0.dist-info" / "entry_points.txt").write_text("[medico.models]\nquitnet = quitter:build\n")
    (site / "quitter.py").write_text("import sys\n\nsys.exit(4)\n")
    monkeypatch.syspath_prepend(str(site))
    outcome = invoke("models")
    assert outcome.code == 0, outcome.output
    assert "unet" in outcome.output
    assert "quitnet failed to load" in " ".join(outcome.output.split()) and "SystemExit" in outcome.output


def test_resuming_a_copied_run_never_fetches_the_pretrained_source_its_checkpoint_names(small_data: Path) -> None:
    """A last.pt naming ``file:///a/private/file`` (or any URL): resuming copied it into the cache, or fetched it."""
    trained = invoke("train", "unet", "--option", "init_features=4", "--input-size", "32", "--epochs", "1")
    assert trained.code == 0, trained.output
    secret = small_data / "private.txt"
    secret.write_text("not for the cache")
    last = small_data / "runs" / "1-unet" / "checkpoints" / "last.pt"
    stored = torch.load(last, weights_only=True)
    stored["config"]["pretrained"] = secret.as_uri()
    torch.save(stored, last)
    resumed = invoke("run", "unet", "--resume", "1", "--epochs", "2", "--no-leaderboard", "--device", "cpu")
    assert resumed.code == 0, resumed.output
    assert not [path for path in (small_data / ".cache").rglob("*") if path.name == secret.name]


@pytest.mark.parametrize("command", ["evaluate", "predict", "bench", "submit task 1"])
def test_a_file_named_like_a_run_is_never_taken_for_it(command: str, workspace: Path, run_dir: Path) -> None:
    """A checkpoint dropped into the workspace as ``1``: ``medico evaluate 1`` meant run 1, and silently scored it."""
    other = workspace / "1"
    torch.save(payload(), other)
    args = {
        "evaluate": ["evaluate", "1"],
        "predict": ["predict", "1", workspace / "in", "--out", workspace / "out"],
        "bench": ["bench", "1", "--repeats", "1", "--warmup", "0"],
        "submit task 1": ["submit", "--team", "T", "--checkpoint", "1", "--images", workspace / "in"],
    }[command]
    (workspace / "in").mkdir()
    Image.fromarray(np.full((40, 48, 3), 90, np.uint8)).save(workspace / "in" / "frame.jpg")
    refused(invoke(*args, "--device", "cpu"), "names both the file", "1-unet", "./1")
