"""The scoring worker: a process beside the web server that takes queued submissions one at a time, validates and
scores them (:mod:`medico.challenge.scoring`), and records the outcome, so the web process never scores.

It scores only against the truth its round recorded: when the truth's files changed since, it stops scoring until
the organiser starts a new round (``medico challenge rescore``). Its log names submissions and states, never scores.
A submission left ``scoring`` by a worker that died is queued again, or marked invalid after
:data:`~medico.challenge.queue.MAX_CRASHES` such deaths (:func:`~medico.challenge.queue.requeue_abandoned`).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from medico.challenge.folder import Challenge
from medico.challenge.queue import (
    MAX_CRASHES,
    SERVER_FAULT,
    Outcome,
    claim_next,
    partition,
    record_outcome,
    release,
    release_worker,
    requeue_abandoned,
)
from medico.challenge.server import log_to_terminal
from medico.challenge.settings import ChallengeError
from medico.errors import MedicoError
from medico.files import process_alive

__all__ = [
    "SERVER_FAULT",
    "Stop",
    "TruthChangedError",
    "drain",
    "requeue_dead_workers",
    "run_worker",
    "score_next",
    "worker_process",
]

log = logging.getLogger("medico.challenge.worker")


class Stop(Protocol):
    """What tells the worker to stop (a :class:`multiprocessing.Event` or a :class:`threading.Event`)."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class TruthChangedError(ChallengeError):
    """The ground truth's files are not those the current scoring round recorded."""


def score_next(challenge: Challenge) -> int | None:
    """Claim, score and record the oldest queued submission; its id, or None when the queue is empty.

    Raises:
        TruthChangedError: the truth changed since the current round began (the submission stays queued).
    """
    from medico.challenge.scoring import score_for_challenge  # scorer and pandas: loaded by the worker only
    from medico.submission.scorer import Truth

    claim = claim_next(challenge)
    if claim is None:
        return None
    try:
        images = partition(challenge)
        truth = Truth.read(challenge.settings.truth, sorted(images))
    except MedicoError:
        release(challenge, claim)
        raise
    if truth.fingerprint != claim.truth_fingerprint:
        release(challenge, claim)
        raise TruthChangedError(
            f"the ground truth in {challenge.settings.truth} changed since scoring round {claim.round} began; "
            f"run medico challenge rescore {challenge.folder} to score against it"
        )
    try:
        outcome = score_for_challenge(challenge.archive(claim.submission), truth, images)
    except Exception:  # a fault of the server, not of the archive: logged for the organiser, never retried forever
        log.exception("submission %d: could not be scored", claim.submission)
        outcome = Outcome(messages=(SERVER_FAULT,), fault="server")
    except BaseException:  # interrupted (Ctrl+C in medico challenge rescore): back in the queue, not a crash
        release(challenge, claim)
        raise
    record_outcome(challenge, claim, outcome, datetime.now(timezone.utc))
    log.info("submission %d: %s (round %d)", claim.submission, "scored" if outcome.parts else "invalid", claim.round)
    return claim.submission


def drain(challenge: Challenge) -> int:
    """Score queued submissions until none is left; returns how many were scored."""
    done = 0
    while score_next(challenge) is not None:
        done += 1
    return done


def _another_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process other than this one: a claim under this worker's own id when it starts is a
    dead worker's whose id the system gave again."""
    return pid != os.getpid() and process_alive(pid)


def requeue_dead_workers(challenge: Challenge, alive: Callable[[int], bool] = process_alive) -> None:
    """Queue again what workers that died left ``scoring`` (invalid after :data:`MAX_CRASHES` deaths), and tell the
    organiser which submissions: one that kills every worker scoring it is likely a hostile archive."""
    abandoned = requeue_abandoned(challenge, alive)
    for number in abandoned.queued:
        log.warning("submission %d: the scoring worker died while scoring it; queued again", number)
    for number in abandoned.given_up:
        log.error("submission %d: the scoring worker died while scoring it %d times; marked invalid (its archive "
                  "%s is the likely cause)", number, MAX_CRASHES, challenge.archive(number))


def run_worker(folder: Path, stop: Stop, poll: float = 0.25) -> None:
    """Score the challenge's queue in ``folder`` until ``stop`` is set, looking for new submissions every ``poll``
    seconds; submissions left ``scoring`` by a worker that died (this server's previous one, a killed rescore) are
    queued again first. Ctrl+C in the terminal reaches the server, which sets ``stop``: the worker ignores the
    interrupt, so it never stops halfway through a record."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    log_to_terminal()
    challenge = Challenge.open(folder)
    alive: Callable[[int], bool] = _another_alive
    failed = False
    while not stop.is_set():
        try:
            if failed:  # a record that failed (the database locked, say) left this worker's claim scoring: queue it
                release_worker(challenge, os.getpid())
                failed = False
            requeue_dead_workers(challenge, alive)
            alive = process_alive
            busy = score_next(challenge) is not None
        except MedicoError as error:
            log.error("%s", error)
            busy, failed = False, True
            stop.wait(10 * poll)
        if not busy:
            stop.wait(poll)


def worker_process(folder: Path, poll: float = 0.25) -> None:
    """The server's scoring process: :func:`run_worker` until SIGTERM, which lets the record being written finish.

    Its stop signal is its own, not an event shared with the server: a shared event whose waiter was killed (out
    of memory, say) can leave its lock held, and the server's shutdown would then wait on it forever."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    run_worker(folder, stop, poll)
