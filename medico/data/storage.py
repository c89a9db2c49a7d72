"""Where a dataset's files live: a folder, or a zip archive read in place (never unpacked, never escaped).

Both give the same small interface over paths relative to the dataset root (``images/x.jpg``), so the
Kvasir-SEG reader does not care which one it has.
"""

from __future__ import annotations

import os
import stat
import zipfile
from abc import ABC, abstractmethod
from pathlib import Path, PurePosixPath

from medico.data.dataset import DataError

__all__ = ["MAX_MEMBER_BYTES", "FolderStorage", "Storage", "StorageError", "ZipStorage", "is_safe_member"]

MAX_MEMBER_BYTES = 256 * 1024 * 1024
"""Archive members that would inflate to more than this are refused (no image of a polyp set is that big)."""


class StorageError(DataError):
    """A dataset folder or archive cannot be read."""


class Storage(ABC):
    """Read-only access to a dataset's files by path relative to its root."""

    kind: str
    location: Path
    unsafe: tuple[str, ...] = ()
    """Archive members refused because their path would leave the archive, is a link, or is too big."""

    @abstractmethod
    def files(self, folder: str) -> list[str]:
        """Relative paths of the files directly inside ``folder`` (hidden files skipped), sorted."""

    @abstractmethod
    def has_folder(self, folder: str) -> bool:
        """Whether ``folder`` exists below the root."""

    @abstractmethod
    def read_bytes(self, relative: str) -> bytes:
        """The bytes of one file."""

    def source(self, relative: str) -> Path | bytes:
        """What the image readers take: a path on disk where there is one, else the file's bytes."""
        return self.read_bytes(relative)

    @abstractmethod
    def stamp(self, relative: str) -> tuple[int, int]:
        """(size in bytes, a change marker): when either differs, the file's content may have changed."""

    def exists(self, relative: str) -> bool:
        """Whether a file exists at ``relative``."""
        parent, _, _ = relative.rpartition("/")
        return relative in self.files(parent)

    def label(self, relative: str) -> str:
        """How messages name a file: its path, or ``archive.zip:member``."""
        return str(self.location / relative)


class FolderStorage(Storage):
    """Files in a folder on disk."""

    kind = "folder"

    def __init__(self, root: Path) -> None:
        self.location = Path(root)

    def files(self, folder: str) -> list[str]:
        base = self.location / folder
        if not base.is_dir():
            return []
        return sorted(
            f"{folder}/{entry.name}" if folder else entry.name
            for entry in os.scandir(base)
            if _listed(entry) and not entry.name.startswith(".")
        )

    def has_folder(self, folder: str) -> bool:
        return (self.location / folder).is_dir()

    def read_bytes(self, relative: str) -> bytes:
        try:
            return (self.location / relative).read_bytes()
        except OSError as error:
            raise StorageError(f"{self.label(relative)}: cannot read ({error.strerror or error})") from error

    def source(self, relative: str) -> Path | bytes:
        return self.location / relative

    def stamp(self, relative: str) -> tuple[int, int]:
        info = (self.location / relative).stat()
        return info.st_size, info.st_mtime_ns

    def exists(self, relative: str) -> bool:
        return (self.location / relative).is_file()


def _listed(entry: os.DirEntry) -> bool:
    """A file, or a link that cannot be followed (a loop): listed, so that reading it names the file and the loop."""
    try:
        return entry.is_file()
    except OSError:
        return entry.is_symlink()


def is_safe_member(info: zipfile.ZipInfo) -> bool:
    """A member that stays inside the archive: relative, no ``..``, no drive or backslash, not a symbolic link."""
    name = info.filename
    parts = PurePosixPath(name).parts
    is_link = stat.S_ISLNK(info.external_attr >> 16)
    return not (
        name.startswith("/") or "\\" in name or ".." in parts or (parts and ":" in parts[0]) or is_link
    )


class ZipStorage(Storage):
    """Members of a zip archive below the folder that holds ``images/`` and ``masks/`` (found automatically).

    The archive is opened once per process, so a copy sent to a DataLoader worker reopens its own handle.
    """

    kind = "zip"

    def __init__(self, archive: Path) -> None:
        self.location = Path(archive)
        try:
            with zipfile.ZipFile(self.location) as handle:
                infos = handle.infolist()
        except (OSError, zipfile.BadZipFile) as error:
            raise StorageError(f"{self.location}: not a readable zip archive ({error})") from error
        unsafe = [i.filename for i in infos if not is_safe_member(i) or i.file_size > MAX_MEMBER_BYTES]
        members = [
            i
            for i in infos
            if i.filename not in unsafe and not i.is_dir() and not i.filename.startswith("__MACOSX/")
        ]
        self.unsafe = tuple(unsafe)
        self.root = self._find_root([i.filename for i in members])
        self._members = {
            i.filename[len(self.root) :]: i for i in members if i.filename.startswith(self.root)
        }
        self._folders: dict[str, list[str]] = {}
        for relative in sorted(self._members):
            parent, _, name = relative.rpartition("/")
            if not name.startswith("."):
                self._folders.setdefault(parent, []).append(relative)
        self._handle: zipfile.ZipFile | None = None
        self._pid = -1

    @staticmethod
    def _find_root(names: list[str]) -> str:
        """The shortest prefix under which both ``images/`` and ``masks/`` hold files ('' when at the top)."""
        parents: dict[str, set[str]] = {}
        for name in names:
            parts = name.split("/")
            if len(parts) >= 2:
                prefix = "/".join(parts[:-2])
                parents.setdefault(prefix + "/" if prefix else "", set()).add(parts[-2])
        roots = [prefix for prefix, folders in parents.items() if {"images", "masks"} <= folders]
        return min(roots, key=lambda p: (p.count("/"), p)) if roots else ""

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_handle": None, "_pid": -1}

    def _zip(self) -> zipfile.ZipFile:
        if self._handle is None or self._pid != os.getpid():
            self._handle = zipfile.ZipFile(self.location)
            self._pid = os.getpid()
        return self._handle

    def files(self, folder: str) -> list[str]:
        return list(self._folders.get(folder, []))

    def has_folder(self, folder: str) -> bool:
        return folder in self._folders

    def read_bytes(self, relative: str) -> bytes:
        info = self._members.get(relative)
        if info is None:
            raise StorageError(f"{self.label(relative)}: no such member in the archive")
        try:
            with self._zip().open(info) as member:
                return member.read(MAX_MEMBER_BYTES + 1)
        except (OSError, zipfile.BadZipFile, EOFError) as error:
            raise StorageError(f"{self.label(relative)}: cannot read from the archive ({error})") from error

    def stamp(self, relative: str) -> tuple[int, int]:
        info = self._members[relative]
        return info.file_size, info.CRC

    def exists(self, relative: str) -> bool:
        return relative in self._members

    def label(self, relative: str) -> str:
        return f"{self.location}:{self.root}{relative}"
