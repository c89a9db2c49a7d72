"""Review of session 18's additions: a hosted challenge whose database the organiser edited by hand, ..."""

from __future__ import annotations

import logging
import sqlite3
import warnings
from datetime import datetime, timezone
from pathlib import Path

import pytest

from medico.challenge.app import SERVER_BROKEN, create_app
from medico.challenge.database import DATABASE_FILE
from medico.challenge.folder import Challenge
from medico.challenge.phase import closed_at
from medico.challenge.settings import ChallengeError
from medico.challenge.standings import standings
from medico.challenge.worker import drain
from tests.challenge_setup import bearer, make_challenge, perfect_archive, tokens

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with")
    from starlette.testclient import TestClient

NOW = datetime(2026, 12, 1, 12, tzinfo=timezone.utc)


@pytest.fixture
def scored(tmp_path: Path) -> Challenge:
    """A challenge with one scored perfect submission of team alpha."""
    challenge = make_challenge(tmp_path)
    token = tokens(challenge, ["alpha"], NOW)["alpha"]
    client = TestClient(create_app(challenge.folder, clock=lambda: NOW))
    body = perfect_archive(tmp_path / "a.zip").read_bytes()
    assert client.post("/api/submissions", content=body, headers=bearer(token)).status_code == 202
    drain(challenge)
    return challenge


def _edit(challenge: Challenge, statement: str, *values: object) -> None:
    with sqlite3.connect(challenge.folder / DATABASE_FILE) as connection:
        connection.execute(statement, values)


@pytest.mark.parametrize("value", ["garbage", "2026-01-01T00:00:00", ""])
def test_hand_edited_closing_time_is_a_clear_error(scored: Challenge, value: str, caplog) -> None:
    _edit(scored, "INSERT INTO meta (key, value) VALUES ('closed', ?)", value)
    with pytest.raises(ChallengeError, match="closing time"):
        closed_at(scored)
    client = TestClient(create_app(scored.folder, clock=lambda: NOW), raise_server_exceptions=False)
    with caplog.at_level(logging.ERROR, "medico.challenge.app"):
        response = client.get("/api/leaderboard")
    assert response.status_code == 500 and response.json() == {"error": SERVER_BROKEN}
    assert "closing time" in caplog.text and DATABASE_FILE in caplog.text


@pytest.mark.parametrize("value", ["abc", 7.5, -0.1, float("inf")])
def test_hand_edited_score_is_refused_and_never_sent(scored: Challenge, value: object, caplog) -> None:
    _edit(scored, "UPDATE scores SET dice = ?", value)
    with pytest.raises(ChallengeError, match=f"{DATABASE_FILE}: submission 1"):
        standings(scored, "closed")
    client = TestClient(create_app(scored.folder, clock=lambda: NOW), raise_server_exceptions=False)
    with caplog.at_level(logging.ERROR, "medico.challenge.app"):
        for path in ("/", "/api/leaderboard"):
            response = client.get(path)
            assert response.status_code == 500 and response.json() == {"error": SERVER_BROKEN}
            assert "7.5" not in response.text and "abc" not in response.text
    assert "submission 1" in caplog.text


def _onnx_file(path: Path, size: int, functions: bool = False) -> Path:
    """A tiny ONNX file of medico's signature at input size ``size``; with ``functions`` the mean goes through a local
    function whose constant is external data pointing at /etc/passwd."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    from medico.engine.graphs import INPUT_NAME, OUTPUT_NAME

    inputs = [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 3, size, size])]
    outputs = [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", 1, size, size])]
    opsets = [helper.make_opsetid("", 17)]
    mean = helper.make_node("ReduceMean", [INPUT_NAME], ["mean" if functions else OUTPUT_NAME], axes=[1], keepdims=1)
    nodes, local = [mean], []
    if functions:
        constant = TensorProto(name="k", data_type=TensorProto.FLOAT, dims=[1], data_location=TensorProto.EXTERNAL)
        for key, value in (("location", "/etc/passwd"), ("offset", "0"), ("length", "4")):
            constant.external_data.add(key=key, value=value)
        body = [helper.make_node("Constant", [], ["k"], value=constant), helper.make_node("Add", ["x", "k"], ["y"])]
        local = [helper.make_function("evil", "F", ["x"], ["y"], body, opsets)]
        nodes.append(helper.make_node("F", ["mean"], [OUTPUT_NAME], domain="evil"))
        opsets.append(helper.make_opsetid("evil", 1))
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    path.write_bytes(helper.make_model(graph, opset_imports=opsets, functions=local).SerializeToString())
    return path


GRAPH_RUNTIMES = pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])


@GRAPH_RUNTIMES
def test_onnx_declaring_a_huge_input_size_is_refused(tmp_path: Path, runtime: str) -> None:
    from medico.engine.graphs import GraphError
    from medico.engine.runtimes import load_onnx

    pytest.importorskip(runtime)
    assert load_onnx(_onnx_file(tmp_path / "fine.onnx", 8), runtime).input_size == 8
    with pytest.raises(GraphError, match="S at most 2048"):  # else predict resizes every frame to 10^6 x 10^6
        load_onnx(_onnx_file(tmp_path / "huge.onnx", 10**6), runtime)


@GRAPH_RUNTIMES
def test_onnx_external_data_inside_a_local_function_is_refused_by_the_gate(tmp_path: Path, runtime: str) -> None:
    from medico.engine.graphs import GraphError
    from medico.engine.runtimes import load_onnx

    pytest.importorskip(runtime)
    with pytest.raises(GraphError, match="keeps tensors in other files"):  # medico's gate, not the runtime's
        load_onnx(_onnx_file(tmp_path / "function.onnx", 8, functions=True), runtime)


def test_a_sweep_summary_that_is_a_fifo_is_refused_unread(tmp_path: Path) -> None:
    import json
    import os
    import threading

    from medico.runs.members import MembersError, sweep_runs

    folder = tmp_path / "runs" / "sweeps" / "1-unet"
    folder.mkdir(parents=True)
    fifo = folder / "summary.json"
    os.mkfifo(fifo)

    def write() -> None:  # before the fix the read gets this; after it, nothing reads and the test releases it
        fifo.write_text(json.dumps({"runs": [{"run": "1-unet"}]}))

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        with pytest.raises(MembersError, match="not a plain file"):
            sweep_runs("1-unet", tmp_path / "runs")
    finally:
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        writer.join(5)
        os.close(reader)


def test_uploads_in_flight_count_against_the_uploads_left(tmp_path: Path) -> None:
    """A team with one upload left cannot stream a second body to disk while the first is still arriving."""
    import asyncio

    challenge = make_challenge(tmp_path, max_total=1)
    token = tokens(challenge, ["alpha"], NOW)["alpha"]
    app = create_app(challenge.folder, clock=lambda: NOW)
    body = perfect_archive(tmp_path / "a.zip").read_bytes()
    statuses: dict[str, int] = {}
    read: dict[str, int] = {"slow": 0, "fast": 0}

    def scope() -> dict:
        return {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": "/api/submissions", "raw_path": b"/api/submissions", "query_string": b"", "root_path": "",
            "headers": [(b"authorization", f"Bearer {token}".encode()), (b"host", b"x")],
            "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
        }

    async def run() -> None:
        started, finish = asyncio.Event(), asyncio.Event()

        async def slow_body() -> dict:
            read["slow"] += 1
            if read["slow"] == 1:
                started.set()
                return {"type": "http.request", "body": body[:10], "more_body": True}
            await finish.wait()
            return {"type": "http.request", "body": body[10:], "more_body": False}

        async def fast_body() -> dict:
            read["fast"] += 1
            return {"type": "http.request", "body": body[::-1], "more_body": False}

        def answer(label: str):
            async def send(message: dict) -> None:
                if message["type"] == "http.response.start":
                    statuses[label] = message["status"]
            return send

        slow = asyncio.create_task(app(scope(), slow_body, answer("slow")))  # type: ignore[operator]
        await started.wait()
        await app(scope(), fast_body, answer("fast"))  # type: ignore[operator]
        finish.set()
        await slow

    asyncio.run(run())
    assert statuses == {"slow": 202, "fast": 429}
    assert read["fast"] == 0  # refused before its body was read
    assert [p.name for p in challenge.uploads.iterdir()] == ["1.zip"]


def test_a_failed_record_does_not_leave_the_submission_scoring(tmp_path: Path, monkeypatch) -> None:
    """The database refusing the worker's record once (locked, full) puts the claim back in the queue, not stuck."""
    import signal

    from medico.challenge import worker as worker_module

    challenge = make_challenge(tmp_path)
    token = tokens(challenge, ["alpha"], NOW)["alpha"]
    client = TestClient(create_app(challenge.folder, clock=lambda: NOW))
    body = perfect_archive(tmp_path / "a.zip").read_bytes()
    assert client.post("/api/submissions", content=body, headers=bearer(token)).status_code == 202
    real, calls = worker_module.record_outcome, []

    def flaky(*args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ChallengeError("challenge database: database is locked")
        real(*args, **kwargs)

    monkeypatch.setattr(worker_module, "record_outcome", flaky)

    class Rounds:
        """Stops the worker after a few passes of its loop; waiting takes no time."""

        passes = 0

        def is_set(self) -> bool:
            self.passes += 1
            return self.passes > 4

        def wait(self, timeout: float | None = None) -> bool:
            return False

    handler = signal.getsignal(signal.SIGINT)
    try:
        worker_module.run_worker(challenge.folder, Rounds(), poll=0)
    finally:
        signal.signal(signal.SIGINT, handler)
    with sqlite3.connect(challenge.folder / DATABASE_FILE) as connection:
        assert connection.execute("SELECT state FROM submissions").fetchall() == [("scored",)]


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [("dice", 7.5, "entry dice"), ("hd95", -5.0, "entry hd95"), ("mean_em", 3.0, "entry mean_em"),
     ("tta", "bogus", "entry tta"), ("ensemble", 0, "entry ensemble")],
)
def test_a_hand_edited_leaderboard_row_out_of_range_is_refused_naming_it(
    tmp_path: Path, column: str, value: object, message: str
) -> None:
    from medico.leaderboard.entry import Entry
    from medico.leaderboard.errors import LeaderboardError
    from medico.leaderboard.store import LeaderboardStore

    path = tmp_path / "leaderboard.sqlite"
    store = LeaderboardStore(path)
    store.add(Entry(team="T", model="unet", dice=0.5, iou=0.4, n_images=3, sha256="a" * 64, hd95=3.0, mean_em=0.9))
    with sqlite3.connect(path) as connection:
        connection.execute(f"UPDATE entries SET {column} = ?", (value,))
    with pytest.raises(LeaderboardError, match=rf"{path.name}: entry 1: {message}"):
        LeaderboardStore(path, read_only=True).entries()


def _torchscript_file(path: Path) -> Path:
    """A TorchScript program (traced): what a participant could pass where a checkpoint is expected."""
    import torch

    class Doubling(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2

    torch.jit.save(torch.jit.trace(Doubling(), torch.zeros(1)), str(path))
    return path


def test_a_torchscript_file_given_as_a_checkpoint_is_refused_in_one_line_before_torch_sees_it(
    tmp_path: Path, monkeypatch
) -> None:
    import numpy as np
    import torch
    from PIL import Image
    from typer.testing import CliRunner

    from medico.cli import app

    program = _torchscript_file(tmp_path / "model.pt")
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(images / "a.png")
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was asked to read a TorchScript file"))
    result = CliRunner().invoke(app, ["predict", str(program), str(images), "--out", str(tmp_path / "masks")])
    assert result.exit_code == 2 and "TorchScript program, not a checkpoint" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "weights_only" not in result.output
    assert not (tmp_path / "masks").exists()


def test_the_client_never_follows_a_redirect_with_the_token(tmp_path: Path) -> None:
    """A server (or a proxy in front of it) answering 302 to another host gets no token sent there."""
    import http.server
    import threading

    from medico.challenge.client import ChallengeClient, ClientError

    seen: list[str | None] = []

    class Thief(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    thief = http.server.HTTPServer(("127.0.0.1", 0), Thief)

    class Redirecting(Thief):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{thief.server_port}/steal")
            self.end_headers()

    server = http.server.HTTPServer(("127.0.0.1", 0), Redirecting)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (thief, server)]
    for thread in threads:
        thread.start()
    try:
        client = ChallengeClient(f"http://127.0.0.1:{server.server_port}", "mc_0123456789abcdef_secret")
        with pytest.raises(ClientError, match="redirects to") as refused:
            client.status()
        assert "secret" not in str(refused.value)
    finally:
        for s in (thief, server):
            s.shutdown()
            s.server_close()
    assert seen == []
