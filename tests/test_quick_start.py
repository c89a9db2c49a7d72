"""The README's quick start, followed as written in a workspace that already holds runs: the run it names is the one
submitted, its validation score is on the leaderboard, and the archive is said to get no score here."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from typer.testing import CliRunner

from medico.cli import app
from medico.data.synthetic import synthetic_test_images, write_synthetic_kvasir
from medico.download import file_sha256

README = Path(__file__).resolve().parents[1] / "README.md"
SMALL = {"--input-size": "32", "--max-time": "5m"}
"""The quick start's sizes, shrunk: a 32 px run within a 5-minute budget, capped at one epoch below."""


def quick_start_commands() -> list[list[str]]:
    """The `medico` commands of the quick start's real-data block, as argument lists."""
    section = README.read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.findall(r"```bash\n(.*?)```", section, re.S)[1]
    lines = (line.split("#", 1)[0].strip() for line in block.splitlines())
    return [shlex.split(line)[1:] for line in lines if line.startswith("medico ")]


def test_the_quick_start_in_a_used_workspace_submits_the_run_it_names(run_dir: Path, workspace: Path) -> None:
    data = write_synthetic_kvasir(workspace / "kvasir", count=12, val_count=4)
    test_images = workspace / "medico2020-test" / "images"
    synthetic_test_images(test_images, count=3)
    places = {"../shared/data/kvasir-seg": str(data), "../shared/data/medico2020-test/images": str(test_images)}
    said = {}
    for command in quick_start_commands():
        args = [places.get(arg, arg) for arg in command]
        args = [SMALL.get(args[i - 1], arg) if i else arg for i, arg in enumerate(args)]
        if args[0] == "run":
            args += ["--epochs", "1", "--option", "init_features=4"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
        said[args[0]] = " ".join(result.output.split())

    [named] = [path for path in (workspace / "runs").iterdir() if path != run_dir]
    assert named.name.startswith("2-")  # beside the workspace's older run 1
    [manifest] = (workspace / "submissions").glob("*/*.json")
    assert json.loads(manifest.read_text())["checkpoint_sha256"] == file_sha256(named / "checkpoints" / "best.pt")
    assert f"training run runs/{named.name}" in said["submit"] and "no public ground truth" in said["submit"]
    assert "val" in said["leaderboard"] and "Dice" in said["leaderboard"]
