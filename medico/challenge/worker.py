"""The scoring worker: a process beside the web server that takes queued submissions one at a time, validates and
scores each in a child process within the challenge's time and memory limits (:mod:`medico.challenge.bounded`), and
records the outcome, so the web process never scores and no archive holds or sinks the worker.

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

from medico.challenge.bounded import Crashed, Stop
from medico.challenge.folder import Challenge
from medico.challenge.queue import (
    MAX_CRASHES,
    SERVER_FAULT,
    claim_next,
    partition,
    record_crash,
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


class TruthChangedError(ChallengeError):
    """The ground truth's files are not those the current scoring round recorded."""


def score_next(challenge: Challenge, stop: Stop | None = None) -> int | None:
    """Claim, score and record the oldest queued submission; its id, or None when the queue is empty.

    The archive is scored in a child process within the settings' time and memory limits
    (:func:`~medico.challenge.bounded.score_bounded`), against the truth decoded here first, once per process. When
    ``stop`` is set meanwhile, the child is killed and the submission goes back to the queue.

    Raises:
        TruthChangedError: the truth changed since the current round began (the submission stays queued).
        MedicoError: the truth cannot be read or decoded, or no child can be started (the submission stays queued:
            the organiser's or the server's fault never costs a team an upload).
    """
    from medico.challenge.bounded import score_bounded  # scorer and pandas: loaded by the worker only
    from medico.submission.scorer import Truth

    claim = claim_next(challenge)
    if claim is None:
        return None
    name = f"submission {claim.submission}"
    try:
        images = partition(challenge)
        truth = Truth.read(challenge.settings.truth, sorted(images))
        if truth.fingerprint != claim.truth_fingerprint:
            raise TruthChangedError(
                f"the ground truth in {challenge.settings.truth} changed since scoring round {claim.round} began; "
                f"run medico challenge rescore {challenge.folder} to score against it"
            )
        truth.decode()  # before the child is forked: every child finds it decoded
        result = score_bounded(challenge.archive(claim.submission), truth, images, challenge.settings, name=name,
                               stop=stop)
    except BaseException:  # the truth, no process, or interrupted (Ctrl+C in medico challenge rescore): no crash
        release(challenge, claim)
        raise
    if result is None:  # the worker is stopping: the archive is scored by the next one
        release(challenge, claim)
        return claim.submission
    if isinstance(result, Crashed):
        if record_crash(challenge, claim):
            log.error("%s: the process scoring it died (%s), %d times; marked invalid (its archive %s is the likely "
                      "cause)", name, result.reason, MAX_CRASHES, challenge.archive(claim.submission))
        else:
            log.warning("%s: the process scoring it died (%s); queued again", name, result.reason)
        return claim.submission
    record_outcome(challenge, claim, result, datetime.now(timezone.utc))
    log.info("%s: %s (round %d)", name, "scored" if result.parts else "invalid", claim.round)
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
            busy = score_next(challenge, stop) is not None
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
