"""Which engine runs a model's forward for inference: eager PyTorch, or a graph runtime (ONNX Runtime, OpenVINO) on
the model's ONNX graph.

The :class:`~medico.engine.inference.Predictor` takes the engine as its model: a graph runtime's session
(:mod:`medico.engine.sessions`) runs behind a module without parameters (:class:`OnnxModel`) that maps the same
``[-1, 1]`` batch to the same logits (:mod:`medico.engine.graphs`), so resizing, thresholding and the contract checks
stay one code path. The graph runtimes are optional extras (``pip install 'medico[onnx]'``, ``'medico[openvino]'``)
and run here on the CPU in fp32.

An exported file is hostile input, as a checkpoint is. An ONNX file runs no Python code, but :func:`load_onnx` is
its gate, before any runtime sees the file: no tensor data outside the file (which could read any file on the
machine into the graph), and exactly the signature medico writes (one float input ``(batch, 3, S, S)``, one float
output ``(batch, 1, S, S)``); the runtime then reads the checked bytes, never the path. A TorchScript file is a
program, not data: medico writes them (``medico export --format torchscript``) but never loads one it is given, so
ONNX is the only exported format that runs in ``predict`` and the task 2 container.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from medico.engine import evaluation
from medico.engine.evaluation import check_threshold
from medico.engine.graphs import INPUT_NAME, OUTPUT_NAME, GraphError, require, write_onnx
from medico.engine.inference import Predictor
from medico.engine.runtime import MASK_PRECISION, resolve_device, resolve_precision
from medico.engine.sessions import (
    EXTRAS,
    GRAPH_RUNTIMES,
    NAMES,
    Session,
    fastest_installed,
    open_session,
    runtime_package,
)
from medico.errors import describe_error
from medico.metrics import THRESHOLD
from medico.runs.checkpoint import load_model
from medico.runs.config import MAX_INPUT_SIZE

__all__ = [
    "GRAPH_RUNTIMES",
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

RUNTIMES: tuple[str, ...] = ("auto", "torch", *GRAPH_RUNTIMES)
"""What ``--runtime`` takes: ``auto`` is torch for a checkpoint and, for an ONNX file, the fastest graph runtime
installed (:func:`medico.engine.sessions.fastest_installed`)."""
ONNX_SUFFIX = ".onnx"


class OnnxModel(nn.Module):
    """A graph runtime's session behind a module's forward: ``[-1, 1]`` batch ``(B, 3, S, S)`` in, logits out.

    It has no parameters: moving it to a device or a memory format changes nothing, and its input is copied to a
    contiguous float32 CPU array for the session (the logits come back on the input's device).
    """

    def __init__(self, session: Session, input_size: int, metadata: dict[str, str], runtime: str, source: Path) -> None:
        super().__init__()
        self.session = session
        self.input_size = input_size
        self.metadata = metadata
        self.runtime = runtime
        self.source = source

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """The session's logits; a graph that fails on this batch (one that only runs at batch 1, say) is a
        :class:`GraphError` naming the file, as a graph refused when loaded is."""
        array = batch.detach().to("cpu", torch.float32).contiguous().numpy()
        try:
            logits = self.session(array)
        except Exception as error:  # the runtime's own errors, of its own types
            runtime, problem = NAMES[self.runtime], describe_error(error)
            raise GraphError(f"{self.source}: {runtime} cannot run it on a batch of {len(array)}: {problem}") from error
        return torch.from_numpy(logits).to(batch.device)


def is_onnx_file(path: Path) -> bool:
    """Whether ``path`` names an exported ONNX file (by its suffix) rather than a checkpoint."""
    return Path(path).suffix.lower() == ONNX_SUFFIX


def load_onnx(path: Path, runtime: str = "onnxruntime") -> OnnxModel:
    """The ONNX graph in ``path`` run by ``runtime`` (a graph runtime) behind an :class:`OnnxModel`, once it passes
    the gate (see the module's notes).

    Raises:
        GraphError: the runtime is not installed, the file is unreadable or not ONNX, keeps tensors outside itself,
            its inputs and outputs are not medico's, or the runtime cannot load it.
    """
    _check_graph_runtime(path, runtime)
    onnx = require("onnx", f"--runtime {runtime}", extra=EXTRAS[runtime])
    try:
        data = Path(path).read_bytes()
        proto = onnx.load_model_from_string(data)
    except Exception as error:  # OSError, protobuf's DecodeError...
        raise GraphError(f"{path}: not a readable ONNX file ({describe_error(error)})") from error
    if any(tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.external_data for tensor in _tensors(proto)):
        raise GraphError(f"{path}: the graph keeps tensors in other files (external data); medico runs only "
                         "self-contained ONNX files, as `medico export` writes them")
    size = _checked_signature(path, onnx, proto.graph)
    try:  # from the checked bytes: the runtime cannot resolve file paths (external data) of its own
        session = open_session(runtime, data)
    except GraphError:
        raise
    except Exception as error:
        raise GraphError(f"{path}: {NAMES[runtime]} cannot load it: {describe_error(error)}") from error
    return OnnxModel(session, size, {prop.key: prop.value for prop in proto.metadata_props}, runtime, Path(path))


def _check_graph_runtime(path: Path, runtime: str) -> None:
    """Refuses a runtime that cannot run the ONNX file ``path`` (torch runs checkpoints only)."""
    if runtime not in GRAPH_RUNTIMES:
        raise GraphError(
            f"{path}: an ONNX file runs with --runtime {' or '.join(GRAPH_RUNTIMES)} (or auto), not {runtime}"
        )


def _tensors(model: Any) -> Iterator[Any]:
    """Every tensor a model holds, wherever the format lets one sit: initializers and node attributes, dense and
    sparse (values and indices), in subgraphs, local functions and anything else, found by walking every message of
    the file (a loop, not recursion) rather than a list of places, which missed sparse tensors that both runtimes
    read."""
    pending = [model]
    while pending:
        message = pending.pop()
        if message.DESCRIPTOR.full_name == "onnx.TensorProto":  # holds no tensors itself: its data is never copied
            yield message
            continue
        for field, value in message.ListFields():
            if field.message_type is not None:
                pending.extend([value] if hasattr(value, "DESCRIPTOR") else value)  # one message, or many


class _Arg(NamedTuple):
    """A graph input or output as declared: its name, type (``tensor(float)``...) and shape (an int for a fixed
    axis, a name or None for a dynamic one; None for no shape)."""

    name: str
    type: str
    shape: list[int | str | None] | None


def _declared(onnx: Any, value: Any) -> _Arg:
    """What the ValueInfoProto ``value`` declares, in ONNX Runtime's words."""
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        return _Arg(value.name, str(kind), None)
    tensor = value.type.tensor_type
    dims = [dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or None) for dim in tensor.shape.dim]
    element = onnx.TensorProto.DataType.Name(tensor.elem_type).lower()
    return _Arg(value.name, f"tensor({element})", dims if tensor.HasField("shape") else None)


def _checked_signature(path: Path, onnx: Any, graph: Any) -> int:
    """The input size ``S`` of a graph whose only input is a float ``(batch, 3, S, S)`` named as medico names it and
    whose only output is a float ``(batch, 1, S, S)``; anything else is refused, naming what was found.

    Every declared input counts, one with an initializer too (a runtime may let it be fed), and OpenVINO and ONNX
    Runtime read the same declarations, so the check holds whichever runs the graph.
    """
    inputs = [_declared(onnx, value) for value in graph.input]
    outputs = [_declared(onnx, value) for value in graph.output]

    def shown(args: list[_Arg]) -> str:
        return ", ".join(f"{a.name} {a.type} {a.shape}" for a in args) or "none"

    def fits(arg: _Arg, channels: int) -> bool:
        shape = arg.shape
        return (
            arg.type == "tensor(float)" and shape is not None and len(shape) == 4 and not isinstance(shape[0], int)
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


def onnx_model(
    model: nn.Module, input_size: int, metadata: dict[str, str] | None = None, runtime: str = "onnxruntime"
) -> OnnxModel:
    """``model`` exported to ONNX (in a temporary folder) and loaded into ``runtime`` (a graph runtime)."""
    with tempfile.TemporaryDirectory(prefix="medico-onnx-") as scratch:
        path = write_onnx(model.cpu(), input_size, Path(scratch) / f"model{ONNX_SUFFIX}", metadata or {})
        return load_onnx(path, runtime)


def runtime_model(model: nn.Module, input_size: int, runtime: str) -> nn.Module:
    """``model`` run by ``runtime``: itself for torch (and auto), its ONNX graph for a graph runtime."""
    _check_runtime(runtime)
    return onnx_model(model, input_size, runtime=runtime) if runtime in GRAPH_RUNTIMES else model


def runtime_setting(
    runtime: str, device: str | None, precision: str | None, compile: bool = False
) -> tuple[torch.device, str]:
    """The device and precision a model runs at under ``runtime``: torch's own choice (see
    :mod:`medico.engine.runtime`), or the CPU in fp32 for a graph runtime (anything else asked for is refused, and so
    is ``compile``, which is torch's, and a runtime that is not installed)."""
    _check_runtime(runtime)
    if runtime in GRAPH_RUNTIMES and compile:
        raise GraphError(f"--compile: only with --runtime torch ({NAMES[runtime]} optimises the graph itself)")
    if runtime not in GRAPH_RUNTIMES:
        chosen = resolve_device(device)
        return chosen, resolve_precision(chosen, precision)
    if device not in (None, "auto", "cpu"):
        raise GraphError(f"--device {device}: --runtime {runtime} runs on the CPU here; pass --device cpu or auto")
    if precision not in (None, "auto", "fp32"):
        raise GraphError(
            f"--precision {precision}: --runtime {runtime} runs the graph as exported (fp32); pass fp32 or auto"
        )
    runtime_package(runtime)  # one that is not installed is refused now, not after exporting a checkpoint for it
    return torch.device("cpu"), "fp32"


def runtime_layout(runtime: str) -> torch.memory_format | None:
    """The layout batches take under ``runtime``: NCHW for an ONNX graph's input, None (the device's default,
    :func:`medico.engine.runtime.default_memory_format`) for torch."""
    return torch.contiguous_format if runtime in GRAPH_RUNTIMES else None


def _check_runtime(runtime: str) -> None:
    if runtime not in RUNTIMES:
        raise GraphError(f"--runtime: expected one of {', '.join(RUNTIMES)}, got {runtime!r}")


def load_predictor(
    path: Path,
    *,
    runtime: str = "auto",
    model: str | None = None,
    device: str | None = None,
    precision: str = MASK_PRECISION,
    threshold: float = THRESHOLD,
    compile: bool = False,
    tta: str = "none",
) -> Predictor:
    """A predictor for a checkpoint (run by torch or, exported on the fly, by a graph runtime) or an ONNX file.

    ``model`` is the spec the user trusts to build a checkpoint with (see
    :func:`medico.runs.checkpoint.load_checkpoint`); ``compile`` is torch's and ``tta`` the test-time augmentation
    (see :class:`Predictor`).
    """
    check_threshold(threshold)
    onnx_file = is_onnx_file(path)
    if runtime == "auto":
        # A checkpoint stays in torch: exporting it on the fly took 17-20 s here, more than a graph runtime saves
        # on the 160 test images (about 0.03 s an image at 256x256).
        runtime = fastest_installed() if onnx_file else "torch"
    if onnx_file:
        _check_graph_runtime(path, runtime)
    if onnx_file and model is not None:
        raise GraphError(f"--model {model!r}: only for a checkpoint; {path} is an ONNX file, which needs no model code")
    if not onnx_file and runtime == "torch":  # a checkpoint in torch: evaluation's loader, the one for it
        return evaluation.load_predictor(
            path, model=model, device=device, precision=precision, threshold=threshold, compile=compile, tta=tta
        )[0]
    chosen, chosen_precision = runtime_setting(runtime, device, precision, compile)
    if onnx_file:
        network: nn.Module = load_onnx(path, runtime)
        size = network.input_size
    else:  # a checkpoint exported on the fly for the graph runtime
        network, checkpoint = load_model(path, model=model)
        size = checkpoint.input_size
        network = onnx_model(network, size, runtime=runtime)
    return Predictor(
        network, size, chosen, chosen_precision, threshold, runtime_layout(runtime), compile=compile, tta=tta
    )
