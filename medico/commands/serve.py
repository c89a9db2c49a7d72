"""``medico serve``: host a challenge created by ``medico challenge init`` (needs the ``serve`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medico.challenge.server import DEFAULT_HOST, DEFAULT_PORT, require_serve_extra
from medico.challenge.server import serve as serve_challenge

__all__ = ["serve"]


def serve(
    folder: Annotated[Path, typer.Argument(help="The challenge folder.")],
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 exposes the server to the network.")] = (
        DEFAULT_HOST
    ),
    port: Annotated[int, typer.Option(help="Port to listen on.")] = DEFAULT_PORT,
) -> None:
    """Serve a challenge: uploads, each team's submissions, the leaderboard page and its JSON; a worker process scores.

    Needs the serve extra: pip install 'medico[serve]'.
    """
    require_serve_extra()
    serve_challenge(folder, host, port)
