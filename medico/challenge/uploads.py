"""Receiving an upload: its body streamed to a new file under a size cap, hashed on the way, never held whole.

The file is made by the server (a random name in the uploads folder, created exclusively): nothing a client sends
(a file name, a header) becomes part of a path. An upload over the cap stops being read at the first chunk past it,
and its partial file is deleted. A server killed mid-upload cannot delete its partial file: the partial file's name
carries the server's process id, and the next server to start deletes those whose process is gone
(:func:`sweep_partial_uploads`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from medico.challenge.settings import ChallengeError
from medico.files import process_alive

__all__ = ["TooLargeError", "Upload", "receive_upload", "sweep_partial_uploads"]

_PARTIAL = re.compile(r"\.upload-(?:(?P<pid>[1-9][0-9]{0,6})-)?[0-9a-f]{32}\.part")
"""A partial upload's name: its writer's process id (absent in names older medico gave), a random part."""


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
    path = Path(folder) / f".upload-{os.getpid()}-{secrets.token_hex(16)}.part"
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


def sweep_partial_uploads(folder: Path) -> int:
    """Delete the partial uploads in ``folder`` left by a server that was killed mid-upload (their process is gone);
    returns how many. Only regular files named as :func:`receive_upload` names them go; links are never followed."""
    removed = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            found = _PARTIAL.fullmatch(entry.name)
            if found is None or not entry.is_file(follow_symlinks=False):
                continue
            if found["pid"] is not None and process_alive(int(found["pid"])):
                continue  # another server on this folder is receiving it
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed += 1
    return removed
