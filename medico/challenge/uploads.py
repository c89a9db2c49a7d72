"""Receiving an upload: its body streamed to a new file under a size cap, hashed on the way, never held whole.

The file is made by the server (a random name in the uploads folder, created exclusively): nothing a client sends
(a file name, a header) becomes part of a path. An upload over the cap stops being read at the first chunk past it,
and its partial file is deleted.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from medico.challenge.settings import ChallengeError

__all__ = ["TooLargeError", "Upload", "receive_upload"]


class TooLargeError(ChallengeError):
    """An upload over the size cap."""


@dataclass(frozen=True)
class Upload:
    """A received body: where it was written, its size and SHA-256."""

    path: Path
    size: int
    sha256: str


async def receive_upload(chunks: AsyncIterator[bytes], folder: Path, limit: int) -> Upload:
    """Write the body ``chunks`` to a new file in ``folder``, at most ``limit`` bytes.

    Raises:
        TooLargeError: the body exceeds ``limit`` (the rest is not read; nothing is left on disk).
    """
    path = Path(folder) / f".upload-{secrets.token_hex(16)}.part"
    digest = hashlib.sha256()
    size = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise TooLargeError(f"the upload exceeds the size limit of {limit:,} bytes")
                digest.update(chunk)
                handle.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Upload(path, size, digest.hexdigest())
