"""Serving a challenge: the web app under uvicorn, with its scoring worker process.

Binds to 127.0.0.1 unless told otherwise: exposing the server is the organiser's decision (behind a reverse proxy
with TLS, as tokens travel in a header).
"""

from __future__ import annotations

from pathlib import Path

from medico.errors import MedicoError

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "require_serve_extra", "serve"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def require_serve_extra() -> None:
    """Refuse, in one line, when the ``serve`` extra (starlette, uvicorn) is not installed."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as error:
        raise MedicoError(
            f"medico serve needs the serve extra ({error.name} is missing): pip install 'medico[serve]'"
        ) from None


def serve(folder: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve the challenge in ``folder`` on ``host``:``port`` until interrupted."""
    require_serve_extra()
    import uvicorn

    from medico.challenge.app import create_app

    app = create_app(folder, worker=True)
    uvicorn.run(app, host=host, port=port, proxy_headers=False, server_header=False, log_level="info")
