"""scripts/challenge_load.py, the hosted challenge's load benchmark, still runs: a tiny run of it, for its checks and
its report (the load, made-up tokens, an upload held back across the close), never its timings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.challenge_setup import make_test_set

REPO = Path(__file__).resolve().parents[1]


def test_the_load_benchmark_runs_and_finds_nothing_lost(tmp_path: Path) -> None:
    truth, images = make_test_set(tmp_path / "data")
    out = tmp_path / "load.json"
    options = {"--truth": truth, "--images": images, "--masks": 4, "--teams": 2, "--archives": 6, "--max-total": 2,
               "--readers": 3, "--duration": 1, "--poll": 0.2, "--score-timeout": 120, "--bogus": 30,
               "--bogus-seconds": 1, "--out": out}
    command = [sys.executable, str(REPO / "scripts" / "challenge_load.py")]
    command += [str(part) for option in options.items() for part in option]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert report["problems"] == [] and "checks: all passed" in result.stdout
    assert report["uploads"] == {"202": 4, "429": 2}  # two each accepted, the third of each team over its limit
    assert report["scoring"]["final"] == 4 and report["leaderboard"]["requests"] > 0
    assert set(report["leaderboard"]["latency"]) == {"all", "/", "/api/leaderboard"}
    bogus, late = report["attacks"]["bogus_tokens"], report["attacks"]["held_back_across_close"]
    assert set(bogus["answers"]) == {"401", "429"} and bogus["status_under_bogus"]["count"] > 0
    assert (late["status"], late["stored"], late["seen_before_the_rest"]["board"]) == (403, 0, "private")
