"""`medico bench`: a model name, a checkpoint or a run; both FPS kinds, parameters, FLOPs, JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from medico.bench.speed import benchmark_target
from medico.cli import app
from medico.data.synthetic import write_synthetic_kvasir
from medico.engine.runtime import default_precision
from medico.models import unet
from medico.plugins import UnknownModelError
from medico.runs.checkpoint import Checkpoint, save_checkpoint

runner = CliRunner()


def invoke(*args: object):
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "10000"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.fixture
def checkpoint(workspace: Path) -> Path:
    model = unet(init_features=4)
    return save_checkpoint(
        workspace / "runs" / "1-unet" / "checkpoints" / "best.pt",
        Checkpoint("unet", {"init_features": 4}, 48, model.state_dict()),
    )


def test_a_checkpoint_is_timed_at_its_input_size_with_both_fps_kinds(checkpoint: Path, workspace: Path) -> None:
    images = workspace / "images"
    images.mkdir()
    for index in range(2):
        Image.fromarray(np.zeros((30 + index, 40, 3), np.uint8)).save(images / f"{index}.png")
    result = invoke(
        "bench", checkpoint, "--batch-size", "1", "--batch-size", "2", "--repeats", "2", "--warmup", "1",
        "--images", images, "--json", "bench.json", "--device", "cpu",
    )
    assert result.exit_code == 0, result.output
    assert "forward only" in result.output and "end to end (2" in result.output
    assert "GFLOPs" in result.output and "multiply-add counts as 2" in result.output
    report = json.loads((workspace / "bench.json").read_text())
    assert [(r["kind"], r["batch_size"], r["input_size"]) for r in report["results"]] == [
        ("model", 1, 48), ("model", 2, 48), ("end-to-end", 1, 48)
    ]
    assert report["parameters"] == sum(p.numel() for p in unet(init_features=4).parameters())
    expected = default_precision(torch.device("cpu"))  # bf16 on CPUs that compute it natively, else fp32
    assert report["flops"] > 0 and all(r["precision"] == expected for r in report["results"])
    forward = [r for r in report["results"] if r["kind"] == "model"]
    best = max(forward, key=lambda r: r["fps"])
    assert report["best_batch"] == best["batch_size"]
    assert f"highest model FPS: {best['fps']:.1f} at batch {best['batch_size']}" in result.output


def test_a_run_number_and_an_input_size_override(checkpoint: Path) -> None:
    result = invoke("bench", "1", "--input-size", "32", "--batch-size", "1", "--repeats", "1", "--json", "b.json")
    assert result.exit_code == 0, result.output
    report = json.loads(Path("b.json").read_text())
    assert {r["input_size"] for r in report["results"]} == {32}
    assert report["end_to_end_images"] == "synthetic frames"


def test_a_model_name_is_timed_untrained_at_the_plugins_input_size(workspace: Path) -> None:
    target = benchmark_target("unet")
    assert target.input_size == 256 and "untrained" in target.label
    assert target.parameters == sum(p.numel() for p in unet().parameters())


def test_an_unknown_name_lists_the_models_and_says_it_is_no_run(workspace: Path) -> None:
    with pytest.raises(UnknownModelError, match=r"unknown model 'unett'.*unet.*Nor is it a checkpoint or a run"):
        benchmark_target("unett")
    result = invoke("bench", "unett")
    assert result.exit_code == 2 and "Did you mean" in result.output


def test_training_speed_is_compared_with_the_plain_fp32_loop_in_one_process(checkpoint: Path, cpu_class: str) -> None:
    write_synthetic_kvasir(Path("kvasir"), count=12)
    result = invoke(
        "bench", checkpoint, "--input-size", "16", "--batch-size", "1", "--repeats", "1", "--warmup", "0",
        "--train-batch-size", "2", "--json", "cmp.json", "--device", "cpu", "--data", "kvasir",
    )
    assert result.exit_code == 0, result.output
    assert "speed against baselines" in result.output and "of the measured" in result.output
    assert "img/s with 0 loader workers" in result.output and "medico's training rate" in result.output
    pipeline = json.loads(Path("cmp.json").read_text())["data_pipeline"]
    assert pipeline["kind"] == "data pipeline" and pipeline["batch_size"] == 2 and "kvasir" in pipeline["data"]
    assert pipeline["margin"] == pytest.approx(pipeline["fps"] / pipeline["training_fps"])
    rows = json.loads(Path("cmp.json").read_text())["comparison"]["rows"]
    defaults = {"bf16": "NHWC", "fp32": "NHWC, trains NCHW"}[cpu_class]  # an AVX-512 and an AVX2-only CPU
    assert [(r["precision"], r["layout"], r["baseline"]) for r in rows] == [
        (cpu_class, defaults, False),
        ("fp32", "NCHW", True),
    ]
    assert all(r["training"]["batch_size"] == 2 and r["training"]["kind"] == "training" for r in rows)


def test_a_missing_peer_library_says_how_to_install_it(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "monai", None)  # as if MONAI were not installed
    result = invoke("bench", checkpoint, "--vs", "monai", "--repeats", "1", "--device", "cpu")
    assert result.exit_code == 2
    assert "pip install 'medico[monai]'" in result.stderr


def test_an_unknown_peer_lists_the_known_ones(checkpoint: Path) -> None:
    result = invoke("bench", checkpoint, "--vs", "tensorflow", "--repeats", "1", "--device", "cpu")
    assert result.exit_code == 2 and "known peers: monai" in result.stderr


@pytest.mark.slow
def test_a_compiled_model_is_timed_after_its_compilation(checkpoint: Path) -> None:
    result = invoke(
        "bench", checkpoint, "--compile", "--input-size", "32", "--batch-size", "1", "--repeats", "2",
        "--warmup", "1", "--json", "compiled.json", "--device", "cpu",
    )
    assert result.exit_code == 0, result.output
    assert "compiled for inference (frozen weights) in" in result.stderr
    report = json.loads(Path("compiled.json").read_text())
    assert report["compiled"] is True and all(r["fps"] > 0 for r in report["results"])
