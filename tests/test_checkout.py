"""What the README's walkthroughs leave in a checkout stays out of git: tokens, copied test images, a challenge."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

HOSTING_WRITES = [
    "alpha.token",
    "beta.token",
    "test-images/cju0qkwl35piu0993l0dewei2.jpg",
    "polyps/challenge.sqlite",
    "polyps/uploads/1.zip",
    "runs/1-unet/checkpoints/best.pt",
    "submissions/alpha/alpha_task1_run1.zip",
    "leaderboard/medico.sqlite",
    "load.json",
]
"""Files the README's "Hosting a challenge" walkthrough writes into the checkout it runs in (its runs, archives and
leaderboard included)."""


def test_what_the_hosting_walkthrough_writes_is_ignored_by_git() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout")
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"], cwd=ROOT, input="\n".join(HOSTING_WRITES),
        capture_output=True, text=True, check=False,
    ).stdout.split()
    assert sorted(ignored) == sorted(HOSTING_WRITES), "each must be ignored by .gitignore"
