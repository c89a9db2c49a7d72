"""``medico submit --task efficiency``: a Docker build context whose entry script segments /medico2020 into /mask."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import medico
from medico.cli import app
from medico.runs.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from medico.submission import dockerfile, image_tag

SIZES = [(64, 48), (40, 70)]  # (width, height)


@pytest.fixture
def checkpoint(workspace: Path) -> Path:
    torch.manual_seed(0)
    model = medico.create_model("unet", init_features=4)
    training = {"optimizer": {"step": torch.tensor(3)}, "epoch": 3}
    return save_checkpoint(
        workspace / "tiny.pt", Checkpoint("unet", {"init_features": 4}, 32, model.state_dict(), training=training)
    )


@pytest.fixture
def context(workspace: Path, checkpoint: Path) -> Path:
    result = CliRunner().invoke(app, ["submit", "--team", "T", "--task", "efficiency", "--checkpoint", str(checkpoint)])
    assert result.exit_code == 0, result.output
    return workspace / "submissions" / "T" / "T_task2_run1"


def test_the_dockerfile_builds_on_pytorch_and_copies_weights_package_and_entry_script(context: Path) -> None:
    text = (context / "Dockerfile").read_text()
    assert re.search(r"^FROM pytorch/pytorch:\S+-runtime$", text, re.MULTILINE)
    assert "COPY weights/model.pt /weights/model.pt" in text
    assert "COPY medico_entry.py /app/medico_entry.py" in text
    assert "RUN pip install --no-cache-dir /opt/medico-src" in text
    assert "MEDICO_INPUT=/medico2020" in text and "MEDICO_OUTPUT=/mask" in text
    assert text.rstrip().endswith('CMD ["python", "/app/medico_entry.py"]')
    for copied in ("weights/model.pt", "medico_entry.py", "medico-src/pyproject.toml", "medico-src/medico/__init__.py"):
        assert (context / copied).is_file(), copied
    assert not list(context.rglob("__pycache__"))
    assert '"torch>=' in (context / "medico-src" / "pyproject.toml").read_text()


def test_the_image_tag_in_the_instructions_is_a_valid_docker_tag() -> None:
    text = dockerfile("Polyp Hunters", 2, "0" * 64)
    assert re.search(r"docker build -t polyp-hunters-[0-9a-f]{8}-task2-run2 \.", text)


def test_submit_prints_how_to_build_the_image_and_run_it_on_a_folder_of_images(
    workspace: Path, checkpoint: Path
) -> None:
    result = CliRunner().invoke(app, ["submit", "--team", "T", "--task", "efficiency", "--checkpoint", str(checkpoint)])
    assert result.exit_code == 0, result.output
    tag = image_tag("T", 1)
    assert f"docker build -t {tag} submissions/T/T_task2_run1\n" in result.output
    mounts = "-v /path/to/images:/medico2020:ro -v /path/to/masks:/mask"
    assert f"docker run --rm --gpus all {mounts} {tag}\n" in result.output


def test_the_weights_are_the_model_without_training_state(context: Path, checkpoint: Path) -> None:
    copied, original = load_checkpoint(context / "weights" / "model.pt"), load_checkpoint(checkpoint)
    assert copied.training == {} and copied.input_size == 32 and copied.model_spec == "unet"
    assert all(torch.equal(copied.model[key], original.model[key]) for key in original.model)


def test_the_entry_script_writes_masks_and_prints_timings_and_mean_fps(workspace: Path, context: Path) -> None:
    images, masks = workspace / "medico2020", workspace / "mask"
    images.mkdir()
    rng = np.random.default_rng(1)
    for index, (width, height) in enumerate(SIZES):
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(images / f"img{index}.jpg")
    env = {**os.environ, "MEDICO_INPUT": str(images), "MEDICO_OUTPUT": str(masks), "OMP_NUM_THREADS": "1"}
    weights = str(context / "weights" / "model.pt")
    run = subprocess.run(
        [sys.executable, str(context / "medico_entry.py"), "--weights", weights, "--device", "cpu"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert [line.split(" - ")[0] for line in lines[:-1]] == ["img0.jpg", "img1.jpg"]
    assert all(re.fullmatch(r"\S+ - \d+\.\d+", line) for line in lines[:-1])
    assert re.fullmatch(r"Mean FPS: \d+\.\d+", lines[-1])
    for index, size in enumerate(SIZES):
        mask = Image.open(masks / f"img{index}.png")
        assert mask.mode == "L" and mask.size == size and set(np.unique(np.asarray(mask))) <= {0, 255}


PLUGIN = """
import torch
from torch import nn

import medico


class Strided(nn.Module):
    \"\"\"Needs sides that are multiples of 16 and ImageNet statistics, as encoder-based models do.\"\"\"

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, x):
        if x.shape[-1] % 16 or x.shape[-2] % 16:
            raise RuntimeError("expected multiples of 16")
        return self.conv(x)


@medico.register_model("strided-for-task-2", normalization="imagenet", multiple=16)
def build():
    return Strided()
"""


@pytest.mark.usefixtures("isolated_registry")
def test_a_plugin_model_enters_task_2_as_onnx_and_the_container_needs_no_plugin_code(workspace: Path) -> None:
    pytest.importorskip("onnxruntime")  # the `onnx` extra, which `dev` installs
    (workspace / "plugin_dir").mkdir()
    plugin = workspace / "plugin_dir" / "my_model.py"
    plugin.write_text(PLUGIN)
    spec = f"{plugin}:build"
    torch.manual_seed(0)
    model = medico.create_model(spec)  # fitted to its declaration: ImageNet statistics, padded to 16
    weights = save_checkpoint(workspace / "mine.pt", Checkpoint(spec, {}, 24, model.state_dict()))
    images, masks = workspace / "medico2020", workspace / "mask"
    images.mkdir()
    rng = np.random.default_rng(1)
    for index, (width, height) in enumerate(SIZES):
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(images / f"img{index}.jpg")
    trusted = ["--checkpoint", str(weights), "--model", spec, "--images", str(images)]  # frames to check it on
    result = CliRunner().invoke(app, ["submit", "--team", "T", "--task", "efficiency", *trusted])
    assert result.exit_code == 0, result.output
    context = workspace / "submissions" / "T" / "T_task2_run1"
    assert (context / "weights" / "model.onnx").is_file() and not (context / "weights" / "model.pt").exists()
    assert "COPY weights/model.onnx /weights/model.onnx" in (context / "Dockerfile").read_text()
    assert not list(context.rglob("my_model.py"))
    pyproject = (context / "medico-src" / "pyproject.toml").read_text()
    extra = [r.split(";")[0].strip() for r in importlib.metadata.requires("medico") or [] if 'extra == "onnx"' in r]
    assert all(json.dumps(requirement) in pyproject for requirement in extra)  # the image installs ONNX Runtime

    plugin.unlink()  # as inside the image: the plugin's code is nowhere
    env = {**os.environ, "MEDICO_INPUT": str(images), "MEDICO_OUTPUT": str(masks), "OMP_NUM_THREADS": "1"}
    env["MEDICO_WEIGHTS"] = str(context / "weights" / "model.onnx")
    run = subprocess.run(
        [sys.executable, str(context / "medico_entry.py")],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert run.returncode == 0, run.stderr
    assert re.fullmatch(r"Mean FPS: \d+\.\d+", run.stdout.strip().splitlines()[-1])
    from medico.engine.inference import Predictor

    eager = Predictor(model, 24, "cpu", "fp32")
    for index, (width, height) in enumerate(SIZES):
        expected = eager.masks([np.asarray(Image.open(images / f"img{index}.jpg").convert("RGB"))])[0]
        mask = np.asarray(Image.open(masks / f"img{index}.png"))
        assert mask.shape == (height, width) and np.array_equal(mask == 255, expected)
