"""A tiny hosted challenge for tests: four 12x10 test images and their masks, archives that score 1 on every image
or a known fraction on some, the real server (uvicorn) on a free loopback port, and scoring workers that die outright
on an archive holding ``boom.png``, score every archive for an hour, or never finish a claim."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import zipfile
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image

from medico.challenge.folder import Challenge, init_challenge
from medico.challenge.queue import partition
from medico.challenge.settings import Settings
from medico.challenge.teams import Team, add_team
from medico.submission import mask_png

NAMES = ("case0", "case1", "case2", "case3")
WIDTH, HEIGHT = 12, 10
PARTIAL_IOU = "0.8333"
"""The IoU of :func:`partial_mask` (20 of the 24 polyp pixels, nothing outside): a figure no other score shows."""


def truth_mask() -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[2:6, 2:8] = True
    return mask


def partial_mask() -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[2:6, 2:7] = True
    return mask


def make_test_set(folder: Path) -> tuple[Path, Path]:
    """``(truth, images)`` folders in ``folder``: :data:`NAMES`, each image with its mask."""
    truth, images = folder / "truth", folder / "images"
    truth.mkdir(parents=True)
    images.mkdir(parents=True)
    for name in NAMES:
        (truth / f"{name}.png").write_bytes(mask_png(truth_mask()))
        Image.new("RGB", (WIDTH, HEIGHT), (120, 60, 50)).save(images / f"{name}.jpg")
    return truth, images


def make_challenge(folder: Path, **settings: object) -> Challenge:
    """A challenge in ``folder / "challenge"`` over :func:`make_test_set`, with seed 0 unless told otherwise."""
    truth, images = make_test_set(folder / "data")
    chosen = {"name": "Polyp test", "truth": truth, "images": images, "seed": 0, **settings}
    return init_challenge(folder / "challenge", Settings(**chosen))  # type: ignore[arg-type]


def archive(path: Path, masks: dict[str, np.ndarray]) -> Path:
    """A task 1 zip of ``masks`` (name: boolean mask) at ``path``."""
    with zipfile.ZipFile(path, "w") as handle:
        for name, mask in masks.items():
            handle.writestr(f"{name}.png", mask_png(mask))
    return path


def perfect_archive(path: Path) -> Path:
    """Every mask right: 1 on every score, public and private."""
    return archive(path, {name: truth_mask() for name in NAMES})


def private_partial_archive(challenge: Challenge, path: Path) -> Path:
    """Public masks right, private ones :func:`partial_mask`: public mIoU 1, private mIoU :data:`PARTIAL_IOU`."""
    parts = partition(challenge)
    return archive(path, {n: truth_mask() if parts[n] == "public" else partial_mask() for n in NAMES})


def varied_archives(folder: Path, count: int) -> list[Path]:
    """``count`` valid archives with different contents (one pixel more on case0 each)."""
    paths = []
    for index in range(count):
        masks = {name: truth_mask() for name in NAMES}
        masks["case0"][9, : index % WIDTH + 1] = True
        masks["case1"][8, : index // WIDTH] = True
        paths.append(archive(folder / f"v{index}.zip", masks))
    return paths


def tokens(challenge: Challenge, names: Iterable[str], now: datetime) -> dict[str, str]:
    """A token for each team, added now."""
    return {name: add_team(challenge, name, now) for name in names}


def team_of(challenge: Challenge, name: str) -> Team:
    """Team ``name`` as its current token authenticates it, for adding submissions without the server."""
    with challenge.database.read() as connection:
        row = connection.execute("SELECT id, name, token_id FROM teams WHERE name = ?", (name,)).fetchone()
    return Team(row["id"], row["name"], row["token_id"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def live_server(app: object) -> Iterator[str]:
    """The real uvicorn server running ``app`` in a thread on a free 127.0.0.1 port; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def crashing_worker(folder: Path, poll: float) -> None:
    """The server's scoring worker, except that the worker itself ends at once when it is about to score an archive
    holding ``boom.png``, as when the kernel's out-of-memory killer picks it (no exception, no cleanup)."""
    import medico.challenge.bounded as bounded
    from medico.challenge.worker import worker_process

    real = bounded.score_bounded

    def score(archive: Path, *args: object, **options: object) -> object:
        with zipfile.ZipFile(archive) as handle:
            if "boom.png" in handle.namelist():
                os._exit(70)
        return real(archive, *args, **options)  # type: ignore[arg-type]

    bounded.score_bounded = score  # type: ignore[assignment]
    worker_process(folder, poll)


def slow_worker(folder: Path, poll: float) -> None:
    """The server's scoring worker, except that scoring any archive takes an hour (the child writes its process id to
    ``child.pid`` in ``folder`` first), as scoring a hostile archive under a generous time limit could."""
    import time

    import medico.challenge.scoring as scoring
    from medico.challenge.worker import worker_process

    def score(*args: object) -> object:
        (folder / "child.pid").write_text(str(os.getpid()))
        time.sleep(3600)
        raise AssertionError("never reached")

    scoring.score_for_challenge = score  # type: ignore[assignment]
    worker_process(folder, poll)


def stuck_worker(folder: Path, poll: float) -> None:
    """A scoring worker that claims the oldest queued submission, then neither finishes it nor heeds SIGTERM, as one
    scoring a very slow archive would: the server's shutdown has to kill it."""
    import signal
    import time

    from medico.challenge.folder import Challenge
    from medico.challenge.queue import claim_next

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    claim_next(Challenge.open(folder))
    while True:
        time.sleep(poll)
