"""Serving a challenge: the web app under uvicorn, with its scoring worker process (kept alive by
:mod:`medico.challenge.supervisor`).

Binds to 127.0.0.1 unless told otherwise: exposing the server is the organiser's decision (behind a reverse proxy
with TLS, as tokens travel in a header). The server's and the worker's log lines go to the terminal beside
uvicorn's.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from pathlib import Path

from medico.challenge.folder import Challenge
from medico.challenge.uploads import sweep_partial_uploads
from medico.errors import MedicoError

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "listening_socket",
    "log_to_terminal",
    "prepare_to_serve",
    "require_serve_extra",
    "serve",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000

log = logging.getLogger("medico.challenge.server")


def log_to_terminal() -> None:
    """Write medico's log lines (INFO and up) on stderr, formatted as uvicorn writes its own."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")


def prepare_to_serve(challenge: Challenge) -> None:
    """Before the server answers: refuse a challenge it could not work with (:meth:`Challenge.check_serving`), and
    delete the partial uploads a server killed mid-upload left behind (said in the log)."""
    challenge.check_serving()
    removed = sweep_partial_uploads(challenge.uploads)
    if removed:
        log.warning("removed %d unfinished uploads left in %s by a server stopped mid-upload", removed,
                    challenge.uploads)


def require_serve_extra() -> None:
    """Refuse, in one line, when the ``serve`` extra (starlette, uvicorn) is not installed."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as error:
        raise MedicoError(
            f"medico serve needs the serve extra ({error.name} is missing): pip install 'medico[serve]'"
        ) from None


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` for the server to listen on, bound here so that every way it can fail
    is one line.

    Raises:
        MedicoError: ``port`` is not from 1 to 65535, ``host`` is not an address of this machine, or the port is in
            use (or needs privileges).
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise MedicoError(f"--port {port}: expected a port from 1 to 65535")
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as error:
        raise MedicoError(f"--host {host}: not an address to listen on ({error})") from None
    listener = socket.socket(family, kind, protocol)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restart without waiting
        listener.bind(address)
    except OSError as error:
        listener.close()
        raise MedicoError(f"--port {port}: cannot listen on {host}:{port}: {error.strerror or error}") from None
    return listener


def serve(folder: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve the challenge in ``folder`` on ``host``:``port`` until interrupted."""
    require_serve_extra()
    import uvicorn

    from medico.challenge.app import create_app

    log_to_terminal()
    app = create_app(folder, worker=True)  # the challenge checked before the port is taken
    with listening_socket(host, port) as listener:
        config = uvicorn.Config(app, host=host, port=port, proxy_headers=False, server_header=False, log_level="info")
        server = uvicorn.Server(config)
        # uvicorn says where it listens only for sockets it bound itself: said here in its words
        logging.getLogger("uvicorn.error").info("Uvicorn running on http://%s:%d (Press CTRL+C to quit)", host, port)
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl+C: uvicorn has shut down, and raises it again
            server.run(sockets=[listener])
