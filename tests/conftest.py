"""Shared fixtures: real data locations, headless Chromium and an isolated workspace.

Where the real data or the browser is absent, its tests are skipped with the reason, except under CI (``CI`` set),
where it must be present and its absence fails them: a skipped check must never pass as one run.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from medico import plugins
from medico.data.synthetic import SyntheticDataset
from medico.models import unet
from medico.runs.checkpoint import Checkpoint, save_checkpoint
from tests.cpu_classes import CLASSES_BY_PRECISION

SHARED_DATA = Path(os.environ.get("MEDICO_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
KVASIR = SHARED_DATA / "kvasir-seg"
MEDICO2020_TEST = SHARED_DATA / "medico2020-test" / "images"
CHROMIUM = Path(os.environ.get("MEDICO_CHROMIUM", "/usr/bin/chromium"))
"""Debian's Chromium (``apt-get install chromium``), which playwright drives: playwright's own download is not used."""


@pytest.fixture(params=sorted(CLASSES_BY_PRECISION), ids=lambda precision: f"{precision}-cpu")
def cpu_class(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs the test as on a CPU whose default precision is bf16, then as on one where it is fp32, whatever this
    machine is (``MEDICO_CPU_CLASS``, so that commands run in child processes see it too); the value is that default
    precision."""
    monkeypatch.setenv("MEDICO_CPU_CLASS", CLASSES_BY_PRECISION[request.param])
    return request.param


@pytest.fixture(scope="session", autouse=True)
def _few_threads() -> None:
    """Two threads: the CI machine has two cores, and more threads only add contention."""
    torch.set_num_threads(min(2, torch.get_num_threads()))


def _unavailable(message: str) -> None:
    """Skip the test for ``message``; under CI fail it instead."""
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _real_data(path: Path, what: str) -> Path:
    if not path.is_dir():
        _unavailable(f"{what} not found at {path} (set MEDICO_SHARED_DATA to the folder holding it)")
    return path


@pytest.fixture
def kvasir_path() -> Path:
    """The real Kvasir-SEG folder (../shared/data/kvasir-seg)."""
    _real_data(KVASIR / "images", "real Kvasir-SEG")
    return KVASIR


@pytest.fixture
def medico2020_test_images() -> Path:
    """The 160 real Medico 2020 test images (../shared/data/medico2020-test/images)."""
    return _real_data(MEDICO2020_TEST, "Medico 2020 test images")


@pytest.fixture
def chromium() -> Iterator[Any]:
    """Headless Chromium (a playwright ``Browser``): Debian's :data:`CHROMIUM`, driven by the playwright package."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the browser tests need playwright: pip install -e '.[dev]' (never `playwright install`)")
    if not CHROMIUM.is_file():
        _unavailable(
            f"the browser tests need Chromium at {CHROMIUM}: apt-get install -y --no-install-recommends chromium "
            "(or set MEDICO_CHROMIUM to its path)"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh workspace as the current folder, with runs, cache and leaderboard database inside it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MEDICO_CACHE", str(tmp_path / ".cache"))
    monkeypatch.setenv("MEDICO_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("MEDICO_DB", str(tmp_path / "leaderboard" / "medico.sqlite"))
    return tmp_path


@functools.cache
def _small_synthetic(count: int) -> SyntheticDataset:
    return SyntheticDataset(seed=0, count=count)


@pytest.fixture
def small_data(workspace: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Path:
    """A workspace where runs without --data train on a small synthetic set (generated once per size).

    24 frames, or the test module's ``SMALL_SYNTHETIC_COUNT``; the built-in set has 200.
    """
    dataset = _small_synthetic(getattr(request.module, "SMALL_SYNTHETIC_COUNT", 24))
    monkeypatch.setattr("medico.data.resolve.SyntheticDataset", lambda: dataset)  # what `open_dataset(None)` opens
    return workspace


@pytest.fixture
def run_dir(workspace: Path) -> Path:
    """A run folder holding a tiny untrained U-Net checkpoint that was 'trained' on the synthetic set."""
    torch.manual_seed(0)
    model = unet(init_features=4)
    folder = workspace / "runs" / "1-unet"
    save_checkpoint(
        folder / "checkpoints" / "best.pt",
        Checkpoint(
            model_spec="unet",
            model_options={"init_features": 4},
            input_size=32,
            model=model.state_dict(),
            config={"model": "unet", "data": None, "split": "auto", "seed": 0},
        ),
    )
    return folder


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registry state restored after the test; entry points scanned afresh."""
    plugins.list_models()  # built-ins imported before copying
    monkeypatch.setattr(plugins, "_registry", dict(plugins._registry))
    monkeypatch.setattr(plugins, "_by_builder", dict(plugins._by_builder))
    monkeypatch.setattr(plugins, "_plugin_errors", {})
    monkeypatch.setattr(plugins, "_spec_plugins", {})
    monkeypatch.setattr(plugins, "_entry_points_loaded", False)
