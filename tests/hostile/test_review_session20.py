"""Review of session 20's additions: ``medico compare --sweeps`` on a sweep summary someone handed over, and
``--runtime openvino`` on a participant's ONNX file (what the gate checks is what OpenVINO runs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from medico.cli import app
from medico.engine.graphs import INPUT_NAME, OUTPUT_NAME
from tests.test_compare import NAMES, scored_run, sweep_of

runner = CliRunner()
GRAPH_RUNTIMES = pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
SIZE = 8


def said(result: object) -> str:
    return " ".join(result.output.split())


def test_a_sweep_listing_a_run_twice_is_refused_rather_than_weighing_it_double(workspace: Path) -> None:
    """A hand-edited summary listing the best seed three times would pull the sweep's mean towards it."""
    base = np.random.default_rng(0).integers(20, 70, len(NAMES))
    for run, shift in (("1-attunet", 25), ("2-attunet", 0), ("3-attunet", 10), ("4-attunet", 10)):
        scored_run(workspace, run, NAMES, list(base + shift))
    sweep_of(workspace, "1-attunet", ["1-attunet", "1-attunet", "1-attunet", "2-attunet"])
    sweep_of(workspace, "2-attunet", ["3-attunet", "4-attunet"])
    result = runner.invoke(app, ["compare", "1", "2", "--sweeps"])
    assert result.exit_code == 2, result.output
    assert "summary.json lists run 1-attunet more than once" in said(result)


def _onnx(path: Path, nodes: list, initializers: list = (), sparse: list = (), doc: str = "") -> Path:
    """A graph with medico's signature: ``image (batch, 3, 8, 8)`` in, ``logits (batch, 1, 8, 8)`` out."""
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])]
    outputs = [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", 1, SIZE, SIZE])]
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers), sparse_initializer=sparse)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], doc_string=doc)
    path.write_bytes(model.SerializeToString())
    return path


def _mean(output: str = OUTPUT_NAME) -> object:
    from onnx import helper

    return helper.make_node("ReduceMean", [INPUT_NAME], [output], axes=[1], keepdims=1)


def _external(tensor: object, location: str, offset: int, length: int) -> object:
    from onnx import TensorProto

    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        tensor.external_data.add(key=key, value=value)
    return tensor


@GRAPH_RUNTIMES
@pytest.mark.parametrize("where", ["constant's sparse value", "sparse initializer's indices"])
def test_onnx_external_data_in_a_sparse_tensor_is_refused_by_the_gate(
    workspace: Path, runtime: str, where: str
) -> None:
    """Both runtimes read a sparse tensor's external data from a file beside the working folder (the secret's bytes
    reach the logits); the gate looked at dense tensors and sparse values only."""
    from onnx import SparseTensorProto, TensorProto, helper

    from medico.engine.graphs import GraphError
    from medico.engine.runtimes import load_onnx

    pytest.importorskip(runtime)
    (workspace / "secret.bin").write_bytes(np.array([1234.5], np.float32).tobytes() + np.zeros(1, np.int64).tobytes())
    nodes, sparse = [_mean("mean")], []
    if where == "constant's sparse value":
        values = _external(TensorProto(name="v", data_type=TensorProto.FLOAT, dims=[1]), "secret.bin", 0, 4)
        indices = TensorProto(name="i", data_type=TensorProto.INT64, dims=[1], int64_data=[0])
        constant = helper.make_node("Constant", [], ["k"])
        attribute = constant.attribute.add(name="sparse_value", type=helper.AttributeProto.SPARSE_TENSOR)
        attribute.sparse_tensor.CopyFrom(SparseTensorProto(values=values, indices=indices, dims=[1]))
        nodes.append(constant)
    else:
        values = TensorProto(name="k", data_type=TensorProto.FLOAT, dims=[1], float_data=[7.0])
        indices = _external(TensorProto(name="ki", data_type=TensorProto.INT64, dims=[1]), "secret.bin", 4, 8)
        sparse.append(SparseTensorProto(values=values, indices=indices, dims=[1]))
    nodes.append(helper.make_node("Add", ["mean", "k"], [OUTPUT_NAME]))
    path = _onnx(workspace / "sparse.onnx", nodes, sparse=sparse)
    with pytest.raises(GraphError, match="keeps tensors in other files"):
        load_onnx(path, runtime)


_IR = (  # OpenVINO's own format: the image passed through unchanged, as the output
    '<?xml version="1.0"?><net name="other" version="11"><layers>'
    '<layer id="0" name="image" type="Parameter" version="opset1"><data shape="?,3,8,8" element_type="f32"/>'
    '<output><port id="0" precision="FP32" names="image"><dim>-1</dim><dim>3</dim><dim>8</dim><dim>8</dim></port>'
    '</output></layer><layer id="1" name="logits" type="Result" version="opset1"><input><port id="0"><dim>-1</dim>'
    "<dim>3</dim><dim>8</dim><dim>8</dim></port></input></layer></layers>"
    '<edges><edge from-layer="0" from-port="0" to-layer="1" to-port="0"/></edges></net>'
)


def test_openvino_runs_the_onnx_graph_the_gate_checked_not_another_format_hidden_in_it(tmp_path: Path) -> None:
    """A valid ONNX file whose doc string holds an OpenVINO IR: OpenVINO, left to guess the format of the bytes,
    took the IR (unchecked: any signature, any input size) instead of the graph the gate checked."""
    from medico.engine.runtimes import load_onnx

    pytest.importorskip("openvino")
    path = _onnx(tmp_path / "polyglot.onnx", [_mean()], doc=_IR)
    batch = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    expected = load_onnx(path, "onnxruntime")(batch)
    assert expected.shape == (2, 1, SIZE, SIZE)
    assert torch.allclose(load_onnx(path, "openvino")(batch), expected, atol=1e-6)


@GRAPH_RUNTIMES
def test_an_onnx_graph_that_fails_on_a_batch_is_one_line_naming_the_file(workspace: Path, runtime: str) -> None:
    """A graph that loads at batch 1 but fails on the batch of 5 that predict gives it (a fixed-batch Reshape)."""
    from onnx import helper, numpy_helper

    pytest.importorskip(runtime)
    shape = numpy_helper.from_array(np.array([1, 1, SIZE, SIZE], np.int64), "shape")
    _onnx(workspace / "fixed.onnx", [_mean("mean"), helper.make_node("Reshape", ["mean", "shape"], [OUTPUT_NAME])],
          [shape])
    (workspace / "images").mkdir()
    for index in range(5):
        image = np.random.default_rng(index).integers(0, 256, (20, 30, 3)).astype(np.uint8)
        Image.fromarray(image).save(workspace / "images" / f"{index}.png")
    result = runner.invoke(app, ["predict", "fixed.onnx", "images", "--out", "masks", "--runtime", runtime])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "fixed.onnx" in said(result) and "batch of 5" in said(result)
    assert not (workspace / "masks").exists() or not any((workspace / "masks").iterdir())
