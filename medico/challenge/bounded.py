"""Scoring one archive at a bounded cost: in a child process forked from the worker, under a wall-time and a memory
limit (``max_scoring_seconds`` and ``max_scoring_bytes`` in ``challenge.toml``), so no archive holds or sinks the
only worker.

The worker decodes the truth before it forks (:meth:`Truth.decode <medico.submission.scorer.Truth.decode>`), so every
child starts with it decoded, as the worker itself did before it scored in children: once per truth, not per
archive. Beyond a limit the child is killed and the archive is invalid, the limit named in its message and in the
organiser's log. A child that dies of anything else (a crash in a native decoder, the system's out-of-memory killer)
is a crash, counted as a dead worker's is (:func:`medico.challenge.queue.record_crash`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import resource
import signal
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from medico.challenge.partition import Part
from medico.challenge.queue import SERVER_FAULT, Outcome
from medico.challenge.settings import ChallengeError, Settings

if TYPE_CHECKING:
    from medico.submission.scorer import Truth

__all__ = ["BACKSTOP", "STOP_POLL", "Crashed", "Stop", "exit_reason", "score_bounded"]

STOP_POLL = 0.25
"""Seconds between looks at the worker's stop signal while a child scores."""
BACKSTOP = 10
"""Seconds past its time limit after which a child ends itself (SIGALRM): a worker killed outright cannot kill it."""

log = logging.getLogger("medico.challenge.worker")


class Stop(Protocol):
    """What tells the worker to stop (a :class:`multiprocessing.Event` or a :class:`threading.Event`)."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


@dataclass(frozen=True)
class Crashed:
    """The child scoring an archive ended without an outcome; ``reason`` says how (``killed by SIGSEGV``)."""

    reason: str


def score_bounded(
    archive: Path,
    truth: Truth,
    partition: Mapping[str, Part],
    settings: Settings,
    *,
    name: str,
    stop: Stop | None = None,
) -> Outcome | Crashed | None:
    """Validate and score ``archive`` (:func:`~medico.challenge.scoring.score_for_challenge`) in a child process
    within ``settings``' limits; ``name`` names the archive in the log (``submission 3``).

    Returns:
        the outcome (an invalid one when a limit was passed, or the server failed: :data:`SERVER_FAULT`), a
        :class:`Crashed` child, or None when ``stop`` was set meanwhile (the child is killed, nothing is decided).

    Raises:
        ChallengeError: no child process can be started (out of memory or processes).
    """
    from medico.challenge import scoring  # noqa: F401  (pandas and the scorer: imported in the worker, not per child)

    context = multiprocessing.get_context("fork")  # the child shares the decoded truth, copied only if written
    reader, writer = context.Pipe(duplex=False)
    child = context.Process(
        target=_child, args=(writer, archive, truth, partition, settings), name="medico-scorer-archive", daemon=True
    )
    try:
        child.start()
    except OSError as error:
        reader.close()
        writer.close()
        raise ChallengeError(f"cannot start a process to score {name}: {error}") from error
    writer.close()  # the child's copy is the only one left: it closes when the child ends, however it ends
    try:
        return _await(reader, child, settings, name, stop)
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        reader.close()


def _await(
    reader: Connection, child: multiprocessing.process.BaseProcess, settings: Settings, name: str, stop: Stop | None
) -> Outcome | Crashed | None:
    """What the child sends, or what became of it: killed at the time limit, when ``stop`` is set, or crashed."""
    deadline = time.monotonic() + settings.max_scoring_seconds
    while not wait([reader], timeout=min(STOP_POLL, max(deadline - time.monotonic(), 0))):
        if stop is not None and stop.is_set():
            return None
        if time.monotonic() >= deadline:
            child.kill()
            limit = f"{settings.max_scoring_seconds:g} s"
            log.warning("%s: stopped at the time limit of %s (max_scoring_seconds); invalid", name, limit)
            return Outcome(messages=(f"validating and scoring this archive took longer than the {limit} an archive "
                                     "may take; it was stopped",), fault="archive")
    try:
        kind, value = reader.recv()
    except EOFError:  # the child ended without a word
        child.join()
        return Crashed(exit_reason(child.exitcode))
    if kind == "memory":
        limit = _bytes(settings.max_scoring_bytes)
        log.warning("%s: stopped at the memory limit of %s (max_scoring_bytes); invalid", name, limit)
        return Outcome(messages=(f"validating and scoring this archive needed more than the {limit} of memory an "
                                 "archive may take; it was stopped",), fault="archive")
    if kind == "fault":
        log.error("%s: could not be scored\n%s", name, value)
        return Outcome(messages=(SERVER_FAULT,), fault="server")
    return value


def _child(writer: Connection, archive: Path, truth: Truth, partition: Mapping[str, Part], settings: Settings) -> None:
    """In the child: the limits set, the archive scored, one message sent: ``("outcome", Outcome)``, ``("memory",
    None)`` past the memory limit, or ``("fault", traceback)`` for an error of the server's."""
    from medico.challenge import scoring  # imported by the worker already; looked up here, where a test may patch it

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C reaches the worker, which kills this child
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.alarm(math.ceil(settings.max_scoring_seconds) + BACKSTOP)  # default action: the process ends
    _lower(resource.RLIMIT_CORE, 0)  # a crash leaves no core file of the worker's size
    _lower(resource.RLIMIT_AS, _address_space() + settings.max_scoring_bytes)
    try:
        message: tuple[str, object] = ("outcome", scoring.score_for_challenge(archive, truth, partition))
    except MemoryError:
        message = ("memory", None)
    except Exception:  # a fault of the server's, not the archive's: its traceback goes to the organiser's log
        message = ("fault", traceback.format_exc())
    writer.send(message)


def _lower(kind: int, limit: int) -> None:
    """Set this process's ``kind`` limit to ``limit``, or to its hard limit where that is lower; left as it is where
    the system refuses it (not every system limits address space): scoring without it beats failing every archive."""
    _, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(kind, (limit, limit))


def _address_space() -> int:
    """Bytes of address space this process holds (0 where the system does not say): the memory limit is counted
    beyond it, as the worker's own libraries and the decoded truth are no archive's doing."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    return 0


def exit_reason(exitcode: int | None) -> str:
    """How a process ended, in words: ``killed by SIGKILL`` or ``exit status 1``."""
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit status {exitcode}"


def _bytes(count: int) -> str:
    """``count`` bytes in the largest binary unit that keeps it at least 1: ``4 GiB``, ``64 MiB``."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:.3g} {unit}"
    return f"{count} bytes"
