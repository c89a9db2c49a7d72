"""The graph runtimes: ONNX Runtime or OpenVINO turns a checked ONNX graph's bytes into a function from a float32
``(B, 3, S, S)`` array to its logits, on the CPU in fp32 with torch's thread count (comparable timings).

Both read the graph from memory, never from a path, so neither resolves files beside it (external data); the bytes
are the ones :func:`medico.engine.runtimes.load_onnx` checked, and OpenVINO reads them as ONNX, never as another of its
formats they might also pass for. OpenVINO is imported without its telemetry: a plain ``import openvino`` sends an
event to Google Analytics and writes a client id under ``~/intel`` unless a consent file says no (openvino-telemetry,
which the openvino wheel pulls in). medico hides that package while it imports OpenVINO, so OpenVINO's converter binds
its own no-op stub for the whole process, and leaves the user's consent file alone.
"""

from __future__ import annotations

import importlib.util
import io
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import torch

from medico.engine.graphs import INPUT_NAME, OUTPUT_NAME, require

__all__ = [
    "EXTRAS",
    "FASTEST_FIRST",
    "GRAPH_RUNTIMES",
    "NAMES",
    "Session",
    "fastest_installed",
    "open_session",
    "runtime_package",
]

Session = Callable[[np.ndarray], np.ndarray]
"""A contiguous float32 batch in, its float32 logits out (an array the caller may keep)."""
GRAPH_RUNTIMES: tuple[str, ...] = ("onnxruntime", "openvino")
"""The ``--runtime`` values that run a model's ONNX graph rather than its PyTorch module."""
EXTRAS = {"onnxruntime": "onnx", "openvino": "openvino"}
"""The optional extra (``pip install 'medico[EXTRA]'``) that installs what each runtime needs, the gate's onnx too."""
NAMES = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}
FASTEST_FIRST: tuple[str, ...] = ("openvino", "onnxruntime")
"""Graph runtimes, the fastest first: attunet at 256x256, fp32, batch 1, one ``medico bench --vs onnxruntime --vs
openvino`` process on a 2-core AVX-512 Xeon: OpenVINO 9.0 FPS, ONNX Runtime 8.1, eager PyTorch 7.2, masks equal."""
TELEMETRY = "openvino_telemetry"
OPENVINO_SHAPES = 4
"""Batch sizes an OpenVINO session keeps compiled (a predictor uses two: its batch size and its last batch's)."""


def open_session(runtime: str, data: bytes) -> Session:
    """A ``runtime`` session on the ONNX graph ``data`` (a runtime's own errors pass through to the caller)."""
    return {"onnxruntime": _onnxruntime, "openvino": _openvino}[runtime](data)


def fastest_installed() -> str:
    """The graph runtime ``--runtime auto`` runs an ONNX file in: the first of :data:`FASTEST_FIRST` installed (found
    without importing it), else onnxruntime, whose absence is then reported with its extra."""
    return next((runtime for runtime in FASTEST_FIRST if _installed(runtime)), "onnxruntime")


def _installed(package: str) -> bool:
    if package in sys.modules:  # None there means "not importable" (how tests hide a package)
        return sys.modules[package] is not None
    return importlib.util.find_spec(package) is not None


def runtime_package(runtime: str) -> ModuleType:
    """The graph runtime's package, imported (OpenVINO without its telemetry), or a one-line error naming the extra."""
    return _import_openvino() if runtime == "openvino" else require("onnxruntime", "--runtime onnxruntime")


def _onnxruntime(data: bytes) -> Session:
    ort = runtime_package("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: ONNX Runtime's warnings would go to stderr unasked
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]

    return run


def _openvino(data: bytes) -> Session:
    """An OpenVINO session that compiles the graph for each batch size it is given, never for a dynamic batch.

    OpenVINO's CPU plugin segfaults running an int8 graph with a dynamic input axis on CPUs with AMX (Sapphire Rapids
    and newer; openvinotoolkit/openvino#37577), killing the whole process. Static shapes avoid that path, for fp32
    graphs too (one code path); the last :data:`OPENVINO_SHAPES` batch sizes stay compiled.
    """
    ov = runtime_package("openvino")
    core = ov.Core()
    # Its ONNX reader by name: read_model guesses the format of bytes, and takes an ONNX file whose doc string holds
    # OpenVINO's own XML format for that format, a graph the gate never saw.
    onnx_reader = ov.frontend.FrontEndManager().load_by_framework("onnx")
    model = onnx_reader.convert(onnx_reader.load(io.BytesIO(data)))
    settings = {  # fp32 even where the CPU computes bf16 (OpenVINO's default there), one stream for batch-1 latency
        "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": torch.get_num_threads(),
        "PERFORMANCE_HINT": "LATENCY",
    }
    declared = model.input(INPUT_NAME).get_partial_shape()  # (batch, 3, S, S), the gate checked
    image = [declared[axis].get_length() for axis in range(1, len(declared))]
    requests: dict[int, Any] = {}

    def request_for(size: int) -> Any:
        """The infer request of the graph compiled for batches of ``size`` (OpenVINO refuses other images' shapes)."""
        if size not in requests:
            while len(requests) >= OPENVINO_SHAPES:
                del requests[next(iter(requests))]  # the oldest
            static = model.clone()
            static.reshape({INPUT_NAME: [size, *image]})
            requests[size] = core.compile_model(static, "CPU", settings).create_infer_request()
        return requests[size]

    request_for(1)  # the graph's own errors come now, while the file is loaded

    def run(batch: np.ndarray) -> np.ndarray:
        request = request_for(len(batch))
        request.infer({INPUT_NAME: batch})
        return request.get_tensor(OUTPUT_NAME).data.copy()  # the request reuses its output buffer

    return run


def _import_openvino() -> ModuleType:
    """The ``openvino`` module, imported with openvino-telemetry hidden (see the module's notes)."""
    known = TELEMETRY in sys.modules
    before = sys.modules.get(TELEMETRY)
    sys.modules[TELEMETRY] = None  # type: ignore[assignment]  # `import openvino_telemetry` raises ImportError
    try:
        return require("openvino", "--runtime openvino", extra=EXTRAS["openvino"])
    finally:
        if known:
            sys.modules[TELEMETRY] = before  # type: ignore[assignment]
        else:
            del sys.modules[TELEMETRY]
