"""Download a file once, atomically, with an optional SHA-256 check and a progress callback."""

from __future__ import annotations

import hashlib
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

from medico.errors import MedicoError
from medico.files import atomic_path

__all__ = [
    "DownloadError",
    "Progress",
    "check_sha256",
    "download",
    "file_sha256",
    "named_files_sha256",
    "sha256_matches",
]

Progress = Callable[[int, int | None], None]
"""Called with (bytes received so far, total bytes or None when the server does not say)."""

_CHUNK = 1 << 20


class DownloadError(MedicoError):
    """A download failed, or what arrived is not what was expected."""


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def named_files_sha256(files: Mapping[str, Path]) -> str:
    """Hex SHA-256 over ``files`` in name order, each its name and its file's SHA-256: it changes when a file is added,
    removed, renamed or changed."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{file_sha256(files[name])}\n".encode())
    return digest.hexdigest()


def check_sha256(expected: object) -> str:
    """``expected`` as a digest to match, lower case: the full hex SHA-256 or a prefix of at least 8 hex digits (torch
    hub's file-name convention, ``unet-e012d006.pt``).

    Raises:
        ValueError: ``expected`` is anything else.
    """
    if not isinstance(expected, str) or not re.fullmatch(r"[0-9a-fA-F]{8,64}", expected):
        raise ValueError(f"sha256 {expected!r}: expected a hex digest or a prefix of at least 8 hex digits")
    return expected.lower()


def sha256_matches(actual: str, expected: str) -> bool:
    """Whether a digest matches ``expected`` (see :func:`check_sha256`)."""
    return actual.lower().startswith(check_sha256(expected))


def download(
    url: str,
    destination: Path,
    *,
    sha256: str | None = None,
    progress: Progress | None = None,
    timeout: float = 30.0,
) -> Path:
    """Fetch ``url`` into ``destination``: written to a temporary file beside it, checked, then renamed.

    Args:
        url: http(s) or file URL.
        destination: final path; its folder is created.
        sha256: expected digest (full or a prefix of >= 8 hex digits); a mismatch deletes the file.
        progress: called after each chunk.
        timeout: seconds to wait for the server.

    Raises:
        DownloadError: the server could not be reached or answered with an error, or the hash differs.
    """
    destination = Path(destination)
    digest = hashlib.sha256()
    try:
        with atomic_path(destination, suffix=".part", replace=True) as tmp:
            with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                received = 0
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    if progress is not None:
                        progress(received, total)
            if total is not None and received != total:
                raise DownloadError(f"download of {url} stopped after {received} of {total} bytes")
            actual = digest.hexdigest()
            if sha256 is not None and not sha256_matches(actual, sha256):
                raise DownloadError(f"{url}: SHA-256 mismatch (expected {sha256}, got {actual}); the file was deleted")
    except (urllib.error.URLError, OSError) as error:
        raise DownloadError(f"could not download {url}: {getattr(error, 'reason', error)}") from error
    return destination
