"""Review of the refactor after issue 12 (shipped baselines, built-ins from entry points, RunOptions, split folders).

An installed package never takes a built-in's name or its ``built-in`` origin (which ``medico submit --task
efficiency`` trusts), whatever order packages are found in; a workspace's baseline, published-figures or config file
that cannot be read, a ``--data`` that loops, and a split list of repeated names are one line, never a traceback or a
hang.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from medico.data import DataError
from medico.data.splits import parse_split_list
from medico.models import unet
from medico.plugins import get_plugin, plugin_errors
from tests.hostile.test_checkpoint_runs_no_code import invoke

TINY_RUN = ("--option", "init_features=4", "--input-size", "32", "--epochs", "1")


def install_after_medico(
    site: Path, name: str, entry_points: str, modules: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A distribution ``name`` with ``entry_points`` (``[medico.models]`` lines) and ``modules``, found after medico's
    own (as a package installed beside medico may be: the order is the file system's)."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[medico.models]\n" + entry_points)
    for module, code in modules.items():
        (site / f"{module}.py").write_text(code)
    monkeypatch.setattr(sys, "path", [*sys.path, str(site)])


TINY_BUILDER = "from torch import nn\n\n\ndef build(**options):\n    return nn.Conv2d(3, 1, 1)\n"


@pytest.mark.usefixtures("isolated_registry")
def test_an_installed_entry_point_named_unet_never_replaces_the_built_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found after medico's, a package's ``unet`` silently replaced medico's: ``medico run unet`` trained its code."""
    modules = {"lookalike": TINY_BUILDER}
    install_after_medico(tmp_path / "site", "lookalike", "unet = lookalike:build\n", modules, monkeypatch)
    plugin = get_plugin("unet")
    assert plugin.builder is unet and plugin.origin == "built-in"
    assert "lookalike" in plugin_errors()["unet"] and "built-in" in plugin_errors()["unet"]
    outcome = invoke("models")
    assert outcome.code == 0, outcome.output
    assert "unet failed to load" in " ".join(outcome.output.split()), outcome.output


@pytest.mark.usefixtures("isolated_registry")
def test_a_package_registering_under_a_medico_module_name_is_never_labelled_built_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A builder whose ``__module__`` says ``medico.models...`` was registered as ``built-in``, which ``medico submit
    --task efficiency`` trusts to package it (the image installs only medico), and it could take the name ``unet``."""
    register = (
        "from medico.plugins import register_model\nfrom torch import nn\n\n\n"
        "def build(**options):\n    return nn.Conv2d(3, 1, 1)\n\n\n"
        "build.__module__ = 'medico.models.unet'\nregister_model({name!r})(build)\n"
    )
    modules = {"posing": register.format(name="posenet"), "posing_unet": register.format(name="unet")}
    entry_points = "posing = posing:build\nposing-unet = posing_unet:build\n"
    install_after_medico(tmp_path / "site", "poser", entry_points, modules, monkeypatch)
    assert get_plugin("posenet").origin != "built-in"
    assert get_plugin("unet").builder is unet and get_plugin("unet").origin == "built-in"
    assert "built-in" in plugin_errors()["posing-unet"]


@pytest.mark.parametrize(
    "content",
    [b"team,model,citation,iou\nA,m,caf\xe9,0.5\n", b"team,model,citation,iou\nA,m," + b"x" * 200_000 + b",0.5\n"],
    ids=["latin-1", "huge-cell"],
)
def test_a_workspace_published_figures_file_that_is_no_utf8_csv_is_one_line(workspace: Path, content: bytes) -> None:
    """``medico leaderboard --with-published`` ended in a UnicodeDecodeError or a csv field-limit traceback."""
    (workspace / "baselines").mkdir()
    (workspace / "baselines" / "reported.csv").write_bytes(content)
    outcome = invoke("leaderboard", "--with-published")
    assert outcome.code == 2, outcome.output
    assert "Traceback" not in outcome.output and "baselines/reported.csv" in outcome.output


UNREADABLE = Path("/proc/self/mem")  # a regular file whose reading fails (EIO), even for root


@pytest.mark.skipif(not UNREADABLE.is_file(), reason="needs Linux's /proc/self/mem")
@pytest.mark.parametrize("where", ["--config", "baselines/unet.toml"])
def test_a_config_file_that_cannot_be_read_is_one_line(workspace: Path, where: str) -> None:
    """A TOML file medico may not read (permissions, a failing disk) ended ``medico train`` in an OSError traceback."""
    (workspace / "baselines").mkdir()
    link = workspace / ("settings.toml" if where == "--config" else where)
    link.symlink_to(UNREADABLE)
    extra = ("--config", link) if where == "--config" else ()
    outcome = invoke("train", "unet", *TINY_RUN, *extra)
    assert outcome.code == 2, outcome.output
    assert "Traceback" not in outcome.output and "cannot be read" in outcome.output


def test_a_data_path_that_is_a_loop_of_links_is_one_line(workspace: Path) -> None:
    """``--data loop`` (a link to itself) ended ``medico run`` and ``medico train`` in a RuntimeError traceback."""
    (workspace / "loop").symlink_to(workspace / "loop")
    outcome = invoke("train", "unet", *TINY_RUN, "--data", workspace / "loop")
    assert outcome.code == 2, outcome.output
    assert "Traceback" not in outcome.output and "--data" in outcome.output


def test_a_split_list_of_many_repeated_names_is_refused_at_once() -> None:
    """Counting repeats took time growing with the square of the lines: 40,000 took minutes, 10 million never ended."""
    text = "\n".join(f"frame{i % 20_000}" for i in range(40_000))
    started = time.perf_counter()
    with pytest.raises(DataError, match="listed more than once: frame0, frame1"):
        parse_split_list(text, "train.txt")
    assert time.perf_counter() - started < 2
