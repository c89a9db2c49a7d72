"""``--tracker tensorboard|mlflow``: what a tiny run logs, read back with each package's own reader."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medico.cli import app
from tests.test_run import TINY, history, said

runner = CliRunner()
SMALL_SYNTHETIC_COUNT = 12  # the small_data fixture's set: 2 epochs of a tiny U-Net take a few seconds
RUN = Path("runs/1-unet")
EPOCH_SCALARS = ("train_loss", "val_dice", "val_iou", "lr", "seconds", "images_per_second")


def train(tracker: str, epochs: int = 2) -> object:
    result = runner.invoke(app, ["train", "unet", *TINY, "--epochs", str(epochs), "--tracker", tracker])
    assert result.exit_code == 0, result.output
    return result


def test_tensorboard_holds_every_epoch_of_the_history_the_config_and_the_overlays(small_data: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    train("tensorboard")
    assert json.loads((RUN / "config.json").read_text())["tracker"] == "tensorboard"
    events = EventAccumulator(str(RUN / "tensorboard"), size_guidance={"images": 0, "tensors": 0}).Reload()
    rows = history(RUN)
    for name in EPOCH_SCALARS:
        logged = [(e.step, e.value) for e in events.Scalars(name)]
        assert logged == [(int(r["epoch"]), pytest.approx(float(r[name]), rel=1e-6)) for r in rows]
    summary = json.loads((RUN / "summary.json").read_text())
    assert events.Scalars("final_iou")[-1].value == pytest.approx(summary["validation"]["scores"]["iou"], rel=1e-6)

    hparams = {
        tag: HParamsPluginData.FromString(content)
        for tag, content in events.PluginTagToContent("hparams").items()
    }
    start = next(h.session_start_info for h in hparams.values() if h.HasField("session_start_info"))
    assert start.hparams["options.init_features"].number_value == 4
    assert start.hparams["tracker"].string_value == "tensorboard"
    assert any(h.HasField("session_end_info") for h in hparams.values())  # the run completed
    [text] = events.Tensors("config/text_summary")
    assert '"init_features": 4' in text.tensor_proto.string_val[0].decode()

    [image] = events.Images("overlays")
    assert image.width > 0 and image.height > 0 and image.encoded_image_string.startswith(b"\x89PNG")


def test_mlflow_holds_one_run_named_after_the_medico_run_resumed_included_with_metrics_params_and_overlays(
    small_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # set by medico too; the test's own client reads it
    train("mlflow", epochs=1)
    resumed = runner.invoke(app, ["train", "unet", "--resume", "1", "--epochs", "2"])  # the tracker as recorded
    assert resumed.exit_code == 0, resumed.output

    client = MlflowClient(tracking_uri=Path("mlruns").resolve().as_uri())  # the default: ./mlruns
    experiment = client.get_experiment_by_name("medico")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "1-unet" and run.info.status == "FINISHED"
    rows = history(RUN)
    assert len(rows) == 2
    for name in EPOCH_SCALARS:
        logged = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, name))
        assert logged == [(int(r["epoch"]), pytest.approx(float(r[name]), rel=1e-9)) for r in rows]
    summary = json.loads((RUN / "summary.json").read_text())
    assert run.data.metrics["final_dice"] == pytest.approx(summary["validation"]["scores"]["dice"])
    assert run.data.params["options.init_features"] == "4"
    assert run.data.params["tracker"] == "mlflow"
    assert run.data.params["input_size"] == "32"
    artifacts = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "overlays")}
    assert "contact_sheet.png" in artifacts
    assert artifacts == {p.name for p in (RUN / "overlays").iterdir()}


def test_a_tracker_failing_mid_run_is_one_note_and_the_run_completes(
    small_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def full_disk(self: object, record: object) -> None:
        calls.append(record)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("medico.runs.tracking.TensorBoardTracker.log_epoch", full_disk)
    result = train("tensorboard", epochs=2)
    assert said(result).count("--tracker tensorboard failed (OSError: [Errno 28] No space left on device)") == 1
    assert "the run goes on without it" in said(result)
    assert len(calls) == 1  # not asked again after failing
    assert len(history(RUN)) == 2 and (RUN / "summary.json").is_file()


@pytest.mark.parametrize(
    ("tracker", "message"),
    [
        ("mlflow", "--tracker mlflow needs the mlflow package, which is not installed: pip install 'medico[mlflow]'"),
        ("wandb", "--tracker must be one of none, tensorboard, mlflow, got 'wandb'"),
    ],
)
def test_a_tracker_that_cannot_run_is_refused_before_a_run_folder_exists(
    small_data: Path, monkeypatch: pytest.MonkeyPatch, tracker: str, message: str
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed: importlib finds no such package
    result = runner.invoke(app, ["run", "unet", *TINY, "--tracker", tracker])
    assert result.exit_code == 2
    assert message in said(result)
    assert not RUN.exists()
