"""A model written as a graph that runs without its Python code: ONNX (for ONNX Runtime or OpenVINO) or TorchScript.

The graph takes what the model takes: a float32 batch ``(B, 3, S, S)`` of RGB images in [-1, 1] (medico's input
convention, :func:`medico.engine.preprocess.normalize`), with a dynamic batch axis ``B`` and the model's input size
``S`` fixed, and returns float32 logits ``(B, 1, S, S)``. A plugin's declared normalisation and padding
(:mod:`medico.engine.adapter`) are part of the model's forward, so they are written into the graph too.
ONNX graphs come from ``torch.export`` (the maintained exporter; the TorchScript-based one is deprecated).
:func:`write_int8` quantises an ONNX graph for ONNX Runtime (static, calibrated on real frames).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from torch import nn

from medico.errors import MedicoError

__all__ = [
    "FORMATS",
    "INPUT_NAME",
    "MAX_BATCH",
    "OUTPUT_NAME",
    "GraphError",
    "require",
    "write_int8",
    "write_onnx",
    "write_torchscript",
]

FORMATS: tuple[str, ...] = ("onnx", "torchscript")
INPUT_NAME = "image"
OUTPUT_NAME = "logits"
MAX_BATCH = 4096
"""The largest batch an exported ONNX graph declares it accepts (its batch axis is dynamic up to this)."""
EXTRA = "onnx"
"""The optional extra that installs ONNX, its exporter and ONNX Runtime: ``pip install 'medico[onnx]'``."""


class GraphError(MedicoError):
    """A model cannot be exported, or an exported file cannot be used (missing package, refused signature)."""


def require(package: str, purpose: str, extra: str = EXTRA) -> ModuleType:
    """The module ``package``, or a one-line error naming the extra that installs it (``medico[onnx]`` by default)."""
    try:
        return importlib.import_module(package)
    except ImportError as error:
        raise GraphError(
            f"{purpose} needs the {package} package, which is not installed: pip install 'medico[{extra}]'"
        ) from error


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' deprecation warnings and progress logging (library code prints nothing)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _example(input_size: int) -> torch.Tensor:
    """A batch of two mid-grey images: two, so that tracing cannot specialise the batch axis to 1."""
    return torch.zeros(2, 3, input_size, input_size)


def write_onnx(model: nn.Module, input_size: int, path: Path, metadata: Mapping[str, str]) -> Path:
    """Write ``model`` (eval mode, CPU) to ``path`` as an ONNX graph with ``metadata`` in its ``metadata_props``."""
    require("onnxscript", "exporting to ONNX")
    onnx = require("onnx", "exporting to ONNX")
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    try:
        with _quiet():
            torch.onnx.export(
                model.eval(), (_example(input_size),), str(path), dynamo=True, input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME], dynamic_shapes=({0: batch},), verbose=False, external_data=False,
            )
    except Exception as error:  # torch.export names what it cannot follow (data-dependent control flow...)
        raise GraphError(f"the model cannot be exported to ONNX: {type(error).__name__}: {error}") from error
    proto = onnx.load(str(path))
    del proto.metadata_props[:]  # the exporter's notes on torch.export internals say nothing to a reader
    onnx.helper.set_model_props(proto, dict(metadata))
    onnx.save(proto, str(path))
    return path


def write_int8(source: Path, path: Path, calibration: Iterable[np.ndarray], metadata: Mapping[str, str]) -> Path:
    """Write the ONNX graph ``source`` to ``path`` quantised to int8 (ONNX Runtime's static QDQ quantisation: weights
    per channel, activation ranges from the ``[-1, 1]`` batches of ``calibration``), ``metadata`` in its props.

    The stem (first convolution), the head (last) and every convolution feeding a sigmoid (attention gates) stay in
    fp32: their outputs decide the mask most directly, and quantising them cost most of the masks' agreement.
    """
    onnx = require("onnx", "int8 quantisation")
    quantization = require("onnxruntime.quantization", "int8 quantisation")
    shape_inference = require("onnxruntime.quantization.shape_inference", "int8 quantisation")
    with tempfile.TemporaryDirectory(prefix="medico-int8-") as scratch, _quiet():
        prepared = Path(scratch) / "prepared.onnx"  # shapes inferred, batch norms folded: what quantisation expects
        shape_inference.quant_pre_process(str(source), str(prepared))
        _quantize(onnx, quantization, prepared, path, calibration)
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, dict(metadata))
    onnx.save(proto, str(path))
    return path


def _quantize(onnx: ModuleType, quantization: ModuleType, source: Path, path: Path,
              calibration: Iterable[np.ndarray]) -> None:
    """Static QDQ quantisation of ``source`` into ``path``, keeping the stem, head and gate convolutions in fp32."""
    graph = onnx.load(str(source)).graph
    producers = {output: node for node in graph.node for output in node.output}
    convolutions = [node.name for node in graph.node if node.op_type == "Conv"]
    gates = [producers[n.input[0]].name for n in graph.node if n.op_type == "Sigmoid" and n.input[0] in producers]
    kept = sorted({*gates, *convolutions[:1], *convolutions[-1:]})

    class Reader(quantization.CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    quantization.quantize_static(
        str(source), str(path), Reader(), quant_format=quantization.QuantFormat.QDQ, per_channel=True,
        activation_type=quantization.QuantType.QUInt8, weight_type=quantization.QuantType.QInt8,
        nodes_to_exclude=kept,
    )


def write_torchscript(model: nn.Module, input_size: int, path: Path, metadata: Mapping[str, str]) -> Path:
    """Write ``model`` (eval mode, CPU) to ``path`` as a traced TorchScript module, ``metadata`` in ``medico.json``."""
    try:
        with _quiet(), torch.no_grad():
            traced = torch.jit.trace(model.eval(), _example(input_size), check_trace=False)
    except Exception as error:
        raise GraphError(f"the model cannot be traced to TorchScript: {type(error).__name__}: {error}") from error
    with _quiet():
        torch.jit.save(traced, str(path), _extra_files={"medico.json": json.dumps(dict(metadata))})
    return path
