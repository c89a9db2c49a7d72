"""Download a public dataset archive, verify it, and unpack it safely and atomically.

The archive is downloaded beside the target folder, checked (SHA-256 and size where known, else the
expected number of image/mask pairs), unpacked member by member into a temporary folder (members whose
path would leave it are refused) and only then renamed into place; a failure leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from medico.data.dataset import DataError
from medico.data.resolve import open_kvasir
from medico.data.storage import ZipStorage, is_safe_member
from medico.download import DownloadError, Progress, download

__all__ = ["ARCHIVES", "ArchiveSpec", "FetchResult", "fetch_dataset"]


@dataclass(frozen=True)
class ArchiveSpec:
    """A public dataset archive: where it is, how to verify it, and the folder name it unpacks to."""

    name: str
    url: str
    folder: str
    pairs: int
    sha256: str | None = None
    size: int | None = None


ARCHIVES = {
    "kvasir-seg": ArchiveSpec(
        name="kvasir-seg",
        url="https://datasets.simula.no/downloads/kvasir-seg.zip",
        folder="kvasir-seg",
        pairs=1000,
        # The publisher states no checksum; the archive is verified by its 1,000 image/mask pairs instead.
    ),
}


@dataclass(frozen=True)
class FetchResult:
    """Where the dataset now is, how many pairs it holds, and whether it was downloaded this time."""

    path: Path
    pairs: int
    downloaded: bool


def _unpack(archive: Path, destination: Path) -> None:
    """Extract the folder holding ``images/`` and ``masks/`` into ``destination``, refusing unsafe members."""
    with zipfile.ZipFile(archive) as handle:
        unsafe = [info.filename for info in handle.infolist() if not is_safe_member(info)]
        if unsafe:
            raise DownloadError(f"{archive}: refused, members would leave the archive folder: {', '.join(unsafe[:5])}")
        root = ZipStorage(archive).root
        for info in handle.infolist():
            if info.is_dir() or not info.filename.startswith(root) or info.filename.startswith("__MACOSX/"):
                continue
            target = destination.joinpath(*info.filename[len(root) :].split("/"))
            if not target.resolve().is_relative_to(destination.resolve()):
                raise DownloadError(f"{archive}: refused, member {info.filename} would leave the target folder")
            target.parent.mkdir(parents=True, exist_ok=True)
            with handle.open(info) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)


def fetch_dataset(
    name: str,
    to: Path,
    *,
    url: str | None = None,
    sha256: str | None = None,
    progress: Progress | None = None,
    spec: ArchiveSpec | None = None,
) -> FetchResult:
    """Download dataset ``name`` into ``to/<folder>`` unless it is already there.

    Args:
        name: a key of :data:`ARCHIVES` (ignored when ``spec`` is given).
        to: the folder that receives the dataset folder.
        url: another place to download the same archive from (a mirror).
        sha256: the archive's expected SHA-256; when given, it replaces the pair-count check.
        progress: called with (bytes so far, total or None) during the download.
        spec: a dataset description not in :data:`ARCHIVES`.

    Raises:
        DownloadError: unknown name, failed download, checksum/size/pair-count mismatch, unsafe archive.
    """
    if spec is None:
        if name not in ARCHIVES:
            raise DownloadError(f"dataset {name!r}: expected one of {', '.join(ARCHIVES)}")
        spec = ARCHIVES[name]
    to = Path(to)
    target = to / spec.folder
    if target.exists():
        return FetchResult(target, len(open_kvasir(target).names), downloaded=False)
    to.mkdir(parents=True, exist_ok=True)
    expected_hash = sha256 or spec.sha256
    archive = to / f".{spec.folder}.zip.download"
    staging = Path(tempfile.mkdtemp(prefix=f".{spec.folder}.", dir=to))
    try:
        download(url or spec.url, archive, sha256=expected_hash, progress=progress)
        if spec.size is not None and archive.stat().st_size != spec.size:
            raise DownloadError(f"{spec.url}: expected {spec.size:,} bytes, got {archive.stat().st_size:,}")
        try:
            _unpack(archive, staging)
        except zipfile.BadZipFile as error:
            raise DownloadError(f"{url or spec.url}: not a zip archive ({error})") from error
        try:
            pairs = len(open_kvasir(staging).names)
        except DataError as error:
            raise DownloadError(f"{url or spec.url}: the archive is not a polyp dataset ({error})") from error
        if expected_hash is None and pairs != spec.pairs:
            raise DownloadError(f"{url or spec.url}: expected {spec.pairs} image/mask pairs, the archive holds {pairs}")
        os.replace(staging, target)
    finally:
        archive.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
    return FetchResult(target, pairs, downloaded=True)
