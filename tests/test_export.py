"""``medico export`` and ``--runtime onnxruntime``: exported models predict the eager model's masks, an export that
disagrees is never written, and an exported file handed in is refused unless it is medico's kind of ONNX."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner, Result

from medico.cli import app
from medico.engine.runtimes import load_onnx, runtime_setting
from medico.errors import MedicoError
from tests.cpu_classes import mask_dice_floor

onnx = pytest.importorskip("onnx")  # the `onnx` extra, which `dev` installs: CI runs these
pytest.importorskip("onnxruntime")

runner = CliRunner()

BRANCHY = '''
import torch
from torch import nn


class Branchy(nn.Module):
    """Inverts its logits on dark inputs: Python control flow on the data, which tracing freezes at its example."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, x):
        logits = self.conv(x) + 2 * x.mean(dim=1, keepdim=True)
        return logits if float(x.detach().mean()) > 0 else -logits


def build():
    return Branchy()
'''


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


def frames(folder: Path, count: int = 3, level: int | None = None) -> Path:
    """``count`` JPEG frames of assorted sizes (random, or all at grey ``level``)."""
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        shape = (40 + 8 * index, 56 - 4 * index, 3)
        pixels = rng.integers(0, 256, shape) if level is None else np.full(shape, level)
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"frame{index}.jpg")
    return folder


def graph_runtime(name: str) -> str:
    """``name``, a graph runtime, once its package is importable (the `onnx` and `openvino` extras; `dev` has both)."""
    pytest.importorskip(name)
    return name


RUNTIMES = pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])


def masks(folder: Path) -> dict[str, np.ndarray]:
    return {path.name: np.asarray(Image.open(path)) for path in sorted(folder.glob("*.png"))}


def test_an_onnx_export_predicts_the_eager_masks_and_records_its_origin(run_dir: Path, workspace: Path,
                                                                        cpu_class: str) -> None:
    """`predict` writes masks at fp32 by default on every CPU class, bf16 ones included: those of the graph."""
    exported = invoke("export", "1")  # checked on the run's own validation images
    assert exported.exit_code == 0, exported.output
    assert "least Dice 1.0000" in exported.output and "8 val images" in " ".join(exported.output.split())
    path = workspace / "1-unet.onnx"
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["model"] == "unet" and props["input_size"] == "32" and props["threshold"] == "0.5"
    assert props["source_sha256"] and props["medico_version"] and "[-1, 1]" in props["input"]

    images = frames(workspace / "images")
    for source, out in ((str(path), "onnx"), ("1", "eager")):
        result = invoke("predict", source, str(images), "--out", out)
        assert result.exit_code == 0, result.output
    eager, ours = masks(workspace / "eager"), masks(workspace / "onnx")
    assert eager.keys() == ours.keys() and len(eager) == 3
    assert all(np.array_equal(eager[name], ours[name]) for name in eager)

    again = invoke("export", "1")
    assert again.exit_code == 2 and "--force" in again.output


def test_a_torchscript_export_records_its_origin_but_is_never_loaded_for_prediction(run_dir: Path,
                                                                                   workspace: Path) -> None:
    result = invoke("export", "1", "--format", "torchscript", "--images", str(frames(workspace / "images")))
    assert result.exit_code == 0, result.output
    path = workspace / "1-unet.torchscript.pt"
    with zipfile.ZipFile(path) as archive:
        record = json.loads(archive.read(next(n for n in archive.namelist() if n.endswith("extra/medico.json"))))
    assert record["model"] == "unet" and record["input_size"] == "32"
    refused = invoke("predict", str(path), str(workspace / "images"), "--out", "masks")
    assert refused.exit_code == 2 and not (workspace / "masks").exists()


def test_an_export_whose_masks_differ_from_the_eager_ones_is_not_written(workspace: Path) -> None:
    plugin = workspace / "branchy.py"
    plugin.write_text(BRANCHY)
    spec = f"{plugin}:build"
    trained = invoke("train", spec, "--epochs", "1", "--input-size", "16", "--batch-size", "4")
    assert trained.exit_code == 0, trained.output
    bright = frames(workspace / "bright", level=230)  # tracing saw mid-grey: it keeps the dark branch
    result = invoke("export", "1", "--format", "torchscript", "--images", str(bright), "--model", spec)
    assert result.exit_code == 2 and "disagrees with the eager model" in result.output
    assert not [p for p in workspace.iterdir() if ".torchscript" in p.name]


def test_an_int8_export_is_written_only_when_its_masks_agree_on_average(run_dir: Path, workspace: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    images = str(frames(workspace / "images"))
    monkeypatch.setattr("medico.engine.export.MIN_DICE_INT8", 1.01)  # no quantised model agrees beyond exactness
    refused = invoke("export", "1", "--int8", "--images", images)  # calibrated on the run's training images
    assert refused.exit_code == 2 and "int8 onnx export" in refused.output and "mean mask Dice" in refused.output
    assert not list(workspace.glob("*.onnx"))

    monkeypatch.setattr("medico.engine.export.MIN_DICE_INT8", 0.0)
    written = invoke("export", "1", "--int8", "--images", images, "--calibration", images)
    assert written.exit_code == 0, written.output
    path = workspace / "1-unet-int8.onnx"
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["quantization"].startswith("int8 static") and props["model"] == "unet"
    assert {node.op_type for node in onnx.load(str(path)).graph.node} >= {"QuantizeLinear", "DequantizeLinear"}
    result = invoke("predict", str(path), images, "--out", "masks")
    assert result.exit_code == 0 and len(list((workspace / "masks").glob("*.png"))) == 3


@RUNTIMES
def test_an_onnx_file_is_refused_unless_it_is_self_contained_with_medicos_signature(workspace: Path,
                                                                                    runtime: str) -> None:
    from onnx import TensorProto, helper

    graph_runtime(runtime)

    def graph(shape_in: list, shape_out: list, name: str = "image") -> onnx.ModelProto:
        node = helper.make_node("ReduceMean", [name], ["logits"], axes=[1], keepdims=1)
        inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape_in)]
        outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, shape_out)]
        opset = [helper.make_opsetid("", 13)]
        return helper.make_model(helper.make_graph([node], "g", inputs, outputs), opset_imports=opset)

    medicos = graph(["batch", 3, 8, 8], ["batch", 1, 8, 8])
    cases = {
        "channels.onnx": graph(["batch", 3, 8, 8], ["batch", 2, 8, 8]),
        "fixed-batch.onnx": graph([1, 3, 8, 8], [1, 1, 8, 8]),
        "named.onnx": graph(["batch", 3, 8, 8], ["batch", 1, 8, 8], name="input"),
        "fine.onnx": medicos,
    }
    for name, proto in cases.items():
        onnx.save(proto, str(workspace / name))
    assert load_onnx(workspace / "fine.onnx", runtime).input_size == 8  # the gate passes medico's signature
    (workspace / "text.onnx").write_text("not a graph")
    medicos.graph.initializer.append(helper.make_tensor("w", TensorProto.FLOAT, [4], bytes(16), raw=True))
    onnx.save(medicos, str(workspace / "outside.onnx"), save_as_external_data=True, location="w.bin",
              size_threshold=0)
    expected = {
        "channels.onnx": "one output logits", "fixed-batch.onnx": "dynamic batch", "named.onnx": "found inputs input",
        "text.onnx": "not a readable ONNX file", "outside.onnx": "external data",
    }
    for name, message in expected.items():
        with pytest.raises(MedicoError, match=message):
            load_onnx(workspace / name, runtime)
        result = invoke("predict", name, str(frames(workspace / "images")), "--out", "masks", "--runtime", runtime)
        assert result.exit_code == 2 and f"error: {name}: " in result.output


def test_a_missing_onnx_runtime_is_one_line_naming_the_extra(run_dir: Path, workspace: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    result = invoke("predict", "1", str(frames(workspace / "images")), "--out", "masks", "--runtime", "onnxruntime")
    text = " ".join(result.output.split())  # one message, wrapped to the terminal's width
    assert result.exit_code == 2 and text.startswith("error: --runtime onnxruntime needs the onnxruntime package")
    assert text.endswith("pip install 'medico[onnx]'") and "Traceback" not in text


def test_onnx_runtime_runs_on_the_cpu_in_fp32_and_refuses_other_settings() -> None:
    assert runtime_setting("onnxruntime", "auto", "auto") == (torch.device("cpu"), "fp32")
    for device, precision, option in (("cuda", "auto", "--device cuda"), ("cpu", "bf16", "--precision bf16")):
        with pytest.raises(MedicoError, match=option):
            runtime_setting("onnxruntime", device, precision)
    with pytest.raises(MedicoError, match="--runtime: expected one of"):
        runtime_setting("tensorrt", None, None)


def test_bench_times_the_model_in_onnx_runtime_beside_eager_and_compares_masks(run_dir: Path, cpu_class: str) -> None:
    """The graph runs fp32: its masks equal medico's defaults' where those are fp32, and agree within bf16's rounding
    where the CPU makes them bf16."""
    result = invoke(
        "bench", "1", "--vs", "onnxruntime", "--repeats", "1", "--warmup", "0", "--train-batch-size", "1",
        "--batch-size", "1", "--device", "cpu", "--json", "bench.json",
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(Path("bench.json").read_text())["comparison"]["rows"]
    assert rows[0]["precision"] == cpu_class  # medico's defaults
    runtime = next(row for row in rows if row["runtime"])
    assert "onnxruntime" in runtime["label"] and runtime["training"] is None and runtime["inference"]["fps"] > 0
    assert runtime["mask_dice_vs_defaults"] >= mask_dice_floor(cpu_class)


@pytest.mark.slow
def test_attunet_exports_exactly_on_real_frames(workspace: Path, kvasir_path: Path) -> None:
    from medico import create_model
    from medico.runs.checkpoint import Checkpoint, save_checkpoint

    torch.manual_seed(0)
    model = create_model("attunet", init_features=8)
    save_checkpoint(workspace / "att.pt", Checkpoint("attunet", {"init_features": 8}, 64, model.state_dict()))
    result = invoke("export", "att.pt", "--images", str(kvasir_path / "images"))  # its first 8 frames
    assert result.exit_code == 0 and "on 8 images" in " ".join(result.output.split()), result.output
