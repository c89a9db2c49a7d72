"""The example plugin package (examples/medico-monai-plugin: MONAI's AttentionUnet, no wrapper module) works
through every command a participant uses: the contract check, training with its declared normalisation, padding
multiple and defaults while logging to TensorBoard, bench, task 1, and task 2 as ONNX run without its code.

The package is made visible as pip makes an installed one: its source folder on the path and a ``.dist-info``
holding the entry points of its own ``pyproject.toml``. medico runs in subprocesses, as a user's shell runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tomllib
from PIL import Image

from medico.data.synthetic import write_synthetic_kvasir

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "medico-monai-plugin"
NAME = "monai-attunet"


def _installed(site: Path) -> None:
    """``site`` as pip leaves it after installing the example: its package and a dist-info with its entry points."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
        + "".join(f"Requires-Dist: {requirement}\n" for requirement in project["dependencies"])
    )
    groups = project["entry-points"]
    (info / "entry_points.txt").write_text(
        "".join(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in points.items()) for group, points in groups.items())
    )
    (site / "medico_monai_plugin").symlink_to(EXAMPLE / "medico_monai_plugin")


@pytest.fixture(scope="module")
def shell(tmp_path_factory: pytest.TempPathFactory):
    """Run ``medico ARGS`` in a workspace where the example plugin is installed; returns (run, workspace)."""
    workspace = tmp_path_factory.mktemp("example-plugin")
    _installed(workspace / "site")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(workspace / "site"), os.environ.get("PYTHONPATH", "")]),
           "MEDICO_RUNS": str(workspace / "runs"), "MEDICO_CACHE": str(workspace / ".cache"),
           "MEDICO_DB": str(workspace / "medico.sqlite"), "COLUMNS": "200", "OMP_NUM_THREADS": "2"}

    def run(*args: object, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "medico", *map(str, args)], cwd=workspace, env=env,
                              capture_output=True, text=True, timeout=600, check=False)
        assert (done.returncode == 0) == ok, done.stdout + done.stderr
        return done

    return run, workspace


def test_the_example_is_listed_from_its_entry_point_and_keeps_the_contract(shell) -> None:
    run, _ = shell
    listed = run("models").stdout
    assert NAME in listed and "medico-monai-plugin" in listed
    checked = run("models", "--check", NAME, "--input-size", "36")  # not a multiple of 8: medico pads for it
    assert "keeps the contract at 36x36" in checked.stdout
    assert "input ImageNet mean/std, sides multiple of 8" in checked.stdout  # what its mapping declares


def test_the_example_trains_logs_to_tensorboard_benches_and_submits_task_1_and_2(shell) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, workspace = shell
    data = write_synthetic_kvasir(workspace / "kvasir", count=12)
    run("run", NAME, "--data", data, "--split", "random", "--epochs", "2", "--input-size", "36", "--batch-size", "4",
        "--option", "channels=8,16,32,64", "--tracker", "tensorboard", "--team", "T", "--device", "cpu")
    folder = next((workspace / "runs").glob(f"*-{NAME}"))
    config = json.loads((folder / "config.json").read_text())
    assert config["model"] == NAME and config["lr"] == 1e-3  # the plugin's declared default, not medico's
    environment = json.loads((folder / "environment.json").read_text())
    assert "monai" in json.dumps(environment)  # provenance: the library the plugin builds on, with its version
    events = EventAccumulator(str(folder / "tensorboard"))
    events.Reload()
    assert [s.step for s in events.Scalars("val_dice")] == [1, 2]

    bench = run("bench", "latest", "--batch-size", "1", "--repeats", "1", "--warmup", "0", "--device", "cpu")
    assert "FPS" in bench.stdout

    images = workspace / "test-images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for index, (width, height) in enumerate([(50, 40), (37, 61)]):
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(images / f"t{index}.jpg")
    run("submit", "--team", "T", "--checkpoint", "latest", "--images", images, "--device", "cpu")
    run("validate", workspace / "submissions" / "T" / "T_task1_run1.zip", "--images", images)
    run("submit", "--team", "T", "--task", "efficiency", "--checkpoint", "latest", "--images", images)
    context = workspace / "submissions" / "T" / "T_task2_run1"
    assert (context / "weights" / "model.onnx").is_file()

    # The container's entry, without the plugin on the path: its masks equal `medico predict` with the plugin, both
    # fp32 (the exported graph's arithmetic, on every CPU class).
    run("predict", "latest", images, "--out", workspace / "eager-masks", "--device", "cpu", "--precision", "fp32")
    bare = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    container = subprocess.run(
        [sys.executable, str(context / "medico_entry.py")], cwd=workspace, capture_output=True, text=True,
        timeout=300, check=False,
        env={**bare, "MEDICO_INPUT": str(images), "MEDICO_OUTPUT": str(workspace / "mask"),
             "MEDICO_WEIGHTS": str(context / "weights" / "model.onnx"), "OMP_NUM_THREADS": "2"},
    )
    assert container.returncode == 0, container.stderr
    for mask in sorted((workspace / "eager-masks").iterdir()):
        assert np.array_equal(np.asarray(Image.open(mask)), np.asarray(Image.open(workspace / "mask" / mask.name)))
