"""Options shared by several commands."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["TrustedModel"]

TrustedModel = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="The model spec to build the checkpoint with, when it was trained from a file or module plugin; "
        "passing it is your trust in that code.",
    ),
]
"""``--model SPEC`` of every command that loads a checkpoint (see :func:`medico.runs.checkpoint.load_checkpoint`)."""
