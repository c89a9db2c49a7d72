"""Keeping the server's scoring worker alive: a process beside the web server, watched by a thread that starts a new
one when it dies (killed for memory, a crash in a native decoder), so scoring resumes without a server restart.

A worker that keeps dying is started again after a pause that doubles each time (up to :data:`MAX_BACKOFF`
seconds), so a broken setup fills the organiser's log slowly. The submission being scored is dealt with by the next
worker (:func:`medico.challenge.worker.requeue_dead_workers`), as only the database outlives the dead one.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import TracebackType

from medico.challenge.bounded import exit_reason
from medico.challenge.folder import Challenge
from medico.challenge.queue import release_worker
from medico.challenge.worker import worker_process
from medico.errors import MedicoError

__all__ = ["BACKOFF", "GRACE", "MAX_BACKOFF", "WorkerSupervisor"]

BACKOFF = 1.0
"""Seconds before the first new worker; doubled for each worker that dies soon after starting."""
MAX_BACKOFF = 60.0
"""The longest pause; a worker that lived this long counts as healthy, and the pause starts again at BACKOFF."""
GRACE = 30.0
"""Seconds a stopping worker may take to stop (it kills the child scoring an archive, and writes the record it is
writing) before it is killed."""

log = logging.getLogger("medico.challenge.supervisor")


class WorkerSupervisor:
    """Runs ``target(folder, poll)`` (the scoring worker) in a spawned process from ``__enter__`` to ``__exit__``,
    starting a new one whenever it dies; ``__exit__`` stops it with SIGTERM (the worker's own stop signal).

    Args:
        folder: the challenge folder.
        poll: the worker's seconds between looks at the queue.
        target: the process's function (a module-level one: it is pickled into the new process).
        backoff: seconds before the first restart (doubled for each worker that dies within ``max_backoff``).
        max_backoff: the longest pause between restarts.
        grace: seconds the worker may take to stop before it is killed (its claim is then queued again, no crash).
    """

    def __init__(
        self,
        folder: Path,
        poll: float = 0.25,
        *,
        target: Callable[[Path, float], None] = worker_process,
        backoff: float = BACKOFF,
        max_backoff: float = MAX_BACKOFF,
        grace: float = GRACE,
    ) -> None:
        self.folder, self.poll, self.target = Path(folder), poll, target
        self.backoff, self.max_backoff, self.grace = backoff, max_backoff, grace
        self.restarts = 0
        self._context = multiprocessing.get_context("spawn")  # never fork a process running an event loop and threads
        self._lock = threading.Lock()  # held while a worker starts, so that stopping never races a new one
        self._stopping = threading.Event()
        self._process: BaseProcess | None = None
        self._started = 0.0
        self._watcher: threading.Thread | None = None

    @property
    def process(self) -> BaseProcess | None:
        """The current worker process (None before the first start)."""
        return self._process

    def __enter__(self) -> WorkerSupervisor:
        self._process = self._start()
        self._watcher = threading.Thread(target=self._watch, name="medico-scorer-watch", daemon=True)
        self._watcher.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        with self._lock:
            self._stopping.set()
            process = self._process
        if process is not None:
            process.terminate()  # SIGTERM: the worker finishes the record it is writing, then stops
            process.join(self.grace)
            if process.is_alive():
                process.kill()
                process.join()
                self._release(process)
        if self._watcher is not None:
            self._watcher.join(30)

    def _release(self, process: BaseProcess) -> None:
        """Queue again what a worker killed on shutdown was scoring: the server stopped it, so it is no crash of the
        archive's (counted as one, two restarts during a slow archive would mark an honest submission invalid)."""
        try:
            released = release_worker(Challenge.open(self.folder), int(process.pid or 0))
        except MedicoError as error:
            log.error("the stopped scoring worker's claims were not released: %s", error)
            return
        if released:
            log.warning("stopped the scoring worker mid-archive; %d submission(s) queued again", released)

    def _start(self) -> BaseProcess:
        process = self._context.Process(target=self.target, args=(self.folder, self.poll), name="medico-scorer")
        process.start()
        self._started = time.monotonic()
        return process

    def _watch(self) -> None:
        """Wait for the worker to end; unless the server is stopping, start a new one after the pause."""
        delay = self.backoff
        while True:
            process = self._process
            assert process is not None
            wait([process.sentinel])
            if self._stopping.is_set():
                return
            process.join()
            if time.monotonic() - self._started >= self.max_backoff:
                delay = self.backoff  # it had been working: this death is not part of a crash loop
            log.error("the scoring worker (process %d) died (%s); starting a new one in %g s",
                      process.pid, exit_reason(process.exitcode), delay)
            while not self._restart(delay):
                if self._stopping.is_set():
                    return
                delay = min(2 * delay, self.max_backoff)
                log.error("trying again in %g s", delay)
            if self._stopping.is_set():
                return
            delay = min(2 * delay, self.max_backoff)

    def _restart(self, delay: float) -> bool:
        """Start a new worker after ``delay`` seconds; False when it could not be started (or the server stops)."""
        if self._stopping.wait(delay):
            return False
        with self._lock:
            if self._stopping.is_set():
                return False
            try:
                self._process = self._start()
            except OSError as error:  # out of memory or of processes
                log.error("cannot start a new scoring worker: %s", error)
                return False
        self.restarts += 1
        log.warning("scoring worker restarted (process %d)", self._process.pid)
        return True
