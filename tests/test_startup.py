"""Start-up: light commands load only what they use (neither torch nor matplotlib), and the packages' lazily loaded
names all resolve."""

from __future__ import annotations

import importlib
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.challenge_setup import make_challenge, make_test_set, perfect_archive, team_of

LIGHT_COMMANDS = [["leaderboard", "--format", "csv"], ["data", "cache"], ["validate", "--help"]]


@pytest.mark.parametrize("command", LIGHT_COMMANDS, ids=lambda command: " ".join(command))
def test_light_commands_start_without_importing_torch_or_matplotlib(workspace: Path, command: list[str]) -> None:
    """torch alone takes 1.5 s to import: these answer in about half a second instead of three; matplotlib (a
    third of a second) is for figures only."""
    script = (
        "import sys\n"
        "from medico.cli import app\n"
        "try:\n"
        f"    app({command!r}, prog_name='medico')\n"
        "except SystemExit as done:\n"
        "    assert not done.code, done.code\n"
        "print('torch imported:', 'torch' in sys.modules)\n"
        "print('matplotlib imported:', 'matplotlib' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "torch imported: False" in result.stdout and "matplotlib imported: False" in result.stdout


def _imports(code: str, module: str) -> bool:
    """Whether running ``code`` in a fresh interpreter imports ``module`` (the code must succeed)."""
    script = f"import sys\n{code}\nprint('imported:', {module!r} in sys.modules)\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return "imported: True" in result.stdout


def _imports_torch(code: str) -> bool:
    """Whether running ``code`` in a fresh interpreter imports torch (the code must succeed)."""
    return _imports(code, "torch")


def test_scoring_an_archive_does_not_import_torch(workspace: Path) -> None:
    """``medico score`` counts numpy masks: without torch's 1.5 s start it scores 160 real masks in about a second."""
    truth, _ = make_test_set(workspace / "data")
    archive = perfect_archive(workspace / "T_task1_run1.zip")
    command = ["score", str(archive), "--truth", str(truth), "--team", "T"]
    assert not _imports_torch(
        "from medico.cli import app\n"
        "try:\n"
        f"    app({command!r}, prog_name='medico')\n"
        "except SystemExit as done:\n"
        "    assert not done.code, done.code\n"
    )
    assert (workspace / "T_task1_run1_scores.csv").is_file()


def test_the_challenge_worker_scores_without_importing_torch(tmp_path: Path) -> None:
    """The server's scoring worker validates and scores a submission without loading torch."""
    from medico.challenge.submissions import add_submission
    from medico.challenge.teams import add_team

    challenge = make_challenge(tmp_path)
    now = datetime(2026, 12, 1, 12, tzinfo=timezone.utc)
    add_team(challenge, "alpha", now)
    add_submission(challenge, team_of(challenge, "alpha"), perfect_archive(challenge.uploads / "in.zip"), "f" * 64, now)
    assert not _imports_torch(
        "from medico.challenge.folder import Challenge\n"
        "from medico.challenge.worker import drain\n"
        f"assert drain(Challenge.open({str(challenge.folder)!r})) == 1\n"
    )


@pytest.mark.parametrize("module", ["matplotlib", "scipy", "torch"])
def test_the_closed_challenges_standings_with_rank_intervals_load_no_figures_statistics_or_torch(
    tmp_path: Path, module: str
) -> None:
    """The server renders the standings on every database change: their bootstrap rank intervals need numpy only."""
    from medico.challenge.phase import close_challenge
    from medico.challenge.submissions import add_submission
    from medico.challenge.teams import add_team
    from medico.challenge.worker import drain

    challenge = make_challenge(tmp_path)
    now = datetime(2026, 12, 1, 12, tzinfo=timezone.utc)
    add_team(challenge, "alpha", now)
    add_submission(challenge, team_of(challenge, "alpha"), perfect_archive(challenge.uploads / "in.zip"), "f" * 64, now)
    drain(challenge)
    close_challenge(challenge, now)
    assert not _imports(
        "from medico.challenge.folder import Challenge\n"
        "from medico.challenge.standings import Rendered, standings\n"
        f"board = standings(Challenge.open({str(challenge.folder)!r}), 'closed')\n"
        "assert board.rows[0].interval == (1, 1)\n"
        "Rendered.of(board)\n",
        module,
    )


@pytest.mark.parametrize("package", ["medico", "medico.data", "medico.submission"])
def test_every_public_name_of_a_package_resolves(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, name


def test_commands_do_not_ask_pypi_for_albumentations_updates(tmp_path: Path) -> None:
    """albumentations checks PyPI at import unless told not to: a request on every command, and on an offline
    machine (a GPU box, a hospital network) a warning on stderr that broke one-line error messages."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "https_proxy": "http://127.0.0.1:9",
           "HTTPS_PROXY": "http://127.0.0.1:9"}  # any request fails at once, and albumentations would say so
    script = "import medico.data.augment, albumentations; print('imported')"
    result = subprocess.run([sys.executable, "-W", "default", "-c", script], capture_output=True, text=True,
                            env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "version info" not in result.stderr and "update" not in result.stderr.lower(), result.stderr
