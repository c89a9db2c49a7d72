"""Options shared by several commands."""

from __future__ import annotations

from typing import Annotated

import typer

from medico.engine.runtime import MASK_PRECISION

__all__ = ["MaskPrecision", "Sweep", "TrustedModel", "Tta"]

MaskPrecision = Annotated[
    str,
    typer.Option(
        "--precision",
        help=f"{MASK_PRECISION} (the default for every score and written mask: the same masks across machines, up to "
        "fp32's last bits, and in exported graphs), auto (bf16 where the hardware computes it: faster, a few hundred "
        "pixels per frame differ), bf16 or fp16.",
    ),
]
"""``--precision`` of every command that scores or writes masks (see :data:`medico.engine.runtime.MASK_PRECISION`)."""

TrustedModel = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="The model spec to build the checkpoint with, when it was trained from a file or module plugin; "
        "passing it is your trust in that code.",
    ),
]
"""``--model SPEC`` of every command that loads a checkpoint (see :func:`medico.runs.checkpoint.load_checkpoint`)."""

Tta = Annotated[
    str,
    typer.Option(
        "--tta",
        help="Test-time augmentation: none; flip (mean probability over the image and its two mirror images, 3 "
        "passes); flip+rot (over the 8 flips and quarter turns of the square, 8 passes).",
    ),
]
"""``--tta MODE`` of every command that predicts (see :mod:`medico.engine.tta`)."""

Sweep = Annotated[
    str | None,
    typer.Option(
        "--sweep",
        help="Average the best checkpoints of every run of this sweep (number, id or 'latest' in runs/sweeps/: its "
        "folds and seeds), with any checkpoints given.",
    ),
]
"""``--sweep ID``: a sweep's runs as ensemble members (see :func:`medico.runs.members.resolve_members`)."""
