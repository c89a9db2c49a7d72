"""Which engine runs a model's forward for inference: eager PyTorch, or ONNX Runtime on the model's ONNX graph.

The :class:`~medico.engine.inference.Predictor` takes the engine as its model: ONNX Runtime runs behind a module
without parameters (:class:`OnnxModel`) that maps the same ``[-1, 1]`` batch to the same logits
(:mod:`medico.engine.graphs`), so resizing, thresholding and the contract checks stay one code path.
ONNX Runtime is an optional extra (``pip install 'medico[onnx]'``) and runs here on the CPU in fp32.

An exported file is hostile input, as a checkpoint is. An ONNX file runs no Python code, but :func:`load_onnx` is
its gate: no tensor data outside the file (which could read any file on the machine into the graph), and exactly
the signature medico writes (one float input ``(batch, 3, S, S)``, one float output ``(batch, 1, S, S)``). A
TorchScript file is a program, not data: medico writes them (``medico export --format torchscript``) but never
loads one it is given, so ONNX is the only exported format that runs in ``predict`` and the task 2 container.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medico.engine import evaluation
from medico.engine.evaluation import check_threshold
from medico.engine.graphs import INPUT_NAME, OUTPUT_NAME, GraphError, require, write_onnx
from medico.engine.inference import Predictor
from medico.engine.runtime import resolve_device, resolve_precision
from medico.metrics import THRESHOLD
from medico.runs.checkpoint import load_model
from medico.runs.config import MAX_INPUT_SIZE

__all__ = [
    "ONNX_SUFFIX",
    "RUNTIMES",
    "OnnxModel",
    "is_onnx_file",
    "load_onnx",
    "load_predictor",
    "onnx_model",
    "runtime_layout",
    "runtime_model",
    "runtime_setting",
]

RUNTIMES: tuple[str, ...] = ("auto", "torch", "onnxruntime")
"""What ``--runtime`` takes: ``auto`` is onnxruntime for an ONNX file and torch for a checkpoint."""
ONNX_SUFFIX = ".onnx"


class OnnxModel(nn.Module):
    """An ONNX Runtime session behind a module's forward: ``[-1, 1]`` batch ``(B, 3, S, S)`` in, logits out.

    It has no parameters: moving it to a device or a memory format changes nothing, and its input is copied to a
    contiguous float32 CPU array for the session (the logits come back on the input's device).
    """

    def __init__(self, session: Any, input_size: int, metadata: dict[str, str]) -> None:
        super().__init__()
        self.session = session
        self.input_size = input_size
        self.metadata = metadata

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        array = batch.detach().to("cpu", torch.float32).contiguous().numpy()
        (logits,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: array})
        return torch.from_numpy(logits).to(batch.device)


def is_onnx_file(path: Path) -> bool:
    """Whether ``path`` names an exported ONNX file (by its suffix) rather than a checkpoint."""
    return Path(path).suffix.lower() == ONNX_SUFFIX


def load_onnx(path: Path) -> OnnxModel:
    """The ONNX graph in ``path`` behind an :class:`OnnxModel`, once it passes the gate (see the module's notes).

    Raises:
        GraphError: ONNX Runtime is not installed, the file is unreadable or not ONNX, keeps tensors outside itself,
            or its inputs and outputs are not medico's.
    """
    onnx = require("onnx", "--runtime onnxruntime")
    ort = require("onnxruntime", "--runtime onnxruntime")
    try:
        data = Path(path).read_bytes()
        proto = onnx.load_model_from_string(data)
    except Exception as error:  # OSError, protobuf's DecodeError...
        raise GraphError(f"{path}: not a readable ONNX file ({type(error).__name__}: {error})") from error
    if any(tensor.data_location == onnx.TensorProto.EXTERNAL for tensor in _tensors(proto)):
        raise GraphError(f"{path}: the graph keeps tensors in other files (external data); medico runs only "
                         "self-contained ONNX files, as `medico export` writes them")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: ONNX Runtime's warnings would go to stderr unasked
    options.intra_op_num_threads = torch.get_num_threads()  # the threads torch would use: comparable timings
    try:  # from bytes: the session cannot resolve file paths (external data) of its own either
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as error:
        raise GraphError(f"{path}: ONNX Runtime cannot load it: {type(error).__name__}: {error}") from error
    size = _checked_signature(path, session)
    return OnnxModel(session, size, dict(session.get_modelmeta().custom_metadata_map))


def _tensors(model: Any) -> Iterator[Any]:
    """Every tensor a model holds: initializers and node attributes of its graph and of its local functions (which
    ONNX Runtime inlines), in subgraphs too (a loop, not recursion)."""
    pending = [model.graph, *model.functions]
    while pending:
        graph = pending.pop()
        yield from getattr(graph, "initializer", ())  # a function has nodes only
        yield from (sparse.values for sparse in getattr(graph, "sparse_initializer", ()))
        for node in graph.node:
            for attribute in node.attribute:
                if attribute.HasField("t"):
                    yield attribute.t
                yield from attribute.tensors
                if attribute.HasField("g"):
                    pending.append(attribute.g)
                pending.extend(attribute.graphs)


def _checked_signature(path: Path, session: Any) -> int:
    """The input size ``S`` of a session whose only input is a float ``(batch, 3, S, S)`` named as medico names it
    and whose only output is a float ``(batch, 1, S, S)``; anything else is refused, naming what was found."""
    inputs, outputs = session.get_inputs(), session.get_outputs()

    def shown(args: list[Any]) -> str:
        return ", ".join(f"{a.name} {a.type} {a.shape}" for a in args) or "none"

    def fits(arg: Any, channels: int) -> bool:
        shape = arg.shape
        return (
            arg.type == "tensor(float)" and len(shape) == 4 and not isinstance(shape[0], int)
            and shape[1] == channels and isinstance(shape[2], int) and 0 < shape[2] <= MAX_INPUT_SIZE
            and shape[2] == shape[3]
        )

    if (
        len(inputs) != 1 or len(outputs) != 1 or inputs[0].name != INPUT_NAME or outputs[0].name != OUTPUT_NAME
        or not fits(inputs[0], 3) or not fits(outputs[0], 1) or inputs[0].shape[2] != outputs[0].shape[2]
    ):
        raise GraphError(
            f"{path}: expected one input {INPUT_NAME} tensor(float) [batch, 3, S, S] and one output {OUTPUT_NAME} "
            f"tensor(float) [batch, 1, S, S] (a dynamic batch, S at most {MAX_INPUT_SIZE}, as `medico export` writes "
            f"them); found inputs "
            f"{shown(inputs)}; outputs {shown(outputs)}"
        )
    return int(inputs[0].shape[2])


def onnx_model(model: nn.Module, input_size: int, metadata: dict[str, str] | None = None) -> OnnxModel:
    """``model`` exported to ONNX (in a temporary folder) and loaded into ONNX Runtime."""
    with tempfile.TemporaryDirectory(prefix="medico-onnx-") as scratch:
        path = write_onnx(model.cpu(), input_size, Path(scratch) / f"model{ONNX_SUFFIX}", metadata or {})
        return load_onnx(path)


def runtime_model(model: nn.Module, input_size: int, runtime: str) -> nn.Module:
    """``model`` run by ``runtime``: itself for torch (and auto), its ONNX graph in ONNX Runtime for onnxruntime."""
    _check_runtime(runtime)
    return onnx_model(model, input_size) if runtime == "onnxruntime" else model


def runtime_setting(
    runtime: str, device: str | None, precision: str | None, compile: bool = False
) -> tuple[torch.device, str]:
    """The device and precision a model runs at under ``runtime``: torch's own choice (see
    :mod:`medico.engine.runtime`), or the CPU in fp32 for onnxruntime (anything else asked for is refused, and so is
    ``compile``, which is torch's)."""
    _check_runtime(runtime)
    if runtime == "onnxruntime" and compile:
        raise GraphError("--compile: only with --runtime torch (ONNX Runtime optimises the graph itself)")
    if runtime != "onnxruntime":
        chosen = resolve_device(device)
        return chosen, resolve_precision(chosen, precision)
    if device not in (None, "auto", "cpu"):
        raise GraphError(f"--device {device}: --runtime onnxruntime runs on the CPU here; pass --device cpu or auto")
    if precision not in (None, "auto", "fp32"):
        raise GraphError(
            f"--precision {precision}: --runtime onnxruntime runs the graph as exported (fp32); pass fp32 or auto"
        )
    return torch.device("cpu"), "fp32"


def runtime_layout(runtime: str) -> torch.memory_format | None:
    """The layout batches take under ``runtime``: NCHW for an ONNX graph's input, None (the device's default,
    :func:`medico.engine.runtime.default_memory_format`) for torch."""
    return torch.contiguous_format if runtime == "onnxruntime" else None


def _check_runtime(runtime: str) -> None:
    if runtime not in RUNTIMES:
        raise GraphError(f"--runtime: expected one of {', '.join(RUNTIMES)}, got {runtime!r}")


def load_predictor(
    path: Path,
    *,
    runtime: str = "auto",
    model: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    threshold: float = THRESHOLD,
    compile: bool = False,
    tta: str = "none",
) -> Predictor:
    """A predictor for a checkpoint (run by torch or, exported on the fly, by ONNX Runtime) or an ONNX file.

    ``model`` is the spec the user trusts to build a checkpoint with (see
    :func:`medico.runs.checkpoint.load_checkpoint`); ``compile`` is torch's and ``tta`` the test-time augmentation
    (see :class:`Predictor`).
    """
    check_threshold(threshold)
    onnx_file = is_onnx_file(path)
    if runtime == "auto":
        runtime = "onnxruntime" if onnx_file else "torch"
    if onnx_file and runtime != "onnxruntime":
        raise GraphError(f"{path}: an ONNX file runs with --runtime onnxruntime (or auto), not {runtime}")
    if onnx_file and model is not None:
        raise GraphError(f"--model {model!r}: only for a checkpoint; {path} is an ONNX file, which needs no model code")
    if not onnx_file and runtime == "torch":  # a checkpoint in torch: evaluation's loader, the one for it
        return evaluation.load_predictor(
            path, model=model, device=device, precision=precision, threshold=threshold, compile=compile, tta=tta
        )[0]
    chosen, chosen_precision = runtime_setting(runtime, device, precision, compile)
    if onnx_file:
        network: nn.Module = load_onnx(path)
        size = network.input_size
    else:  # a checkpoint exported on the fly for ONNX Runtime
        network, checkpoint = load_model(path, model=model)
        size = checkpoint.input_size
        network = onnx_model(network, size)
    return Predictor(
        network, size, chosen, chosen_precision, threshold, runtime_layout(runtime), compile=compile, tta=tta
    )
