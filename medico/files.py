"""Where and how medico writes files: regular files only, never over a file it was not told to replace, atomically.

Every write goes to a temporary beside its target and is renamed onto it when complete, so a reader sees the old
file or the new one, never half of one. A failure, a full disk or a killed writer leaves nothing behind: the
temporary is deleted on failure, and a temporary whose writer was killed (its name carries the writer's host and
process id) is deleted by the next write into its folder.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from medico.errors import MedicoError

__all__ = [
    "OutputError",
    "atomic_folder",
    "atomic_path",
    "check_target",
    "disk_error",
    "is_file",
    "process_alive",
    "write_atomic",
]


class OutputError(MedicoError):
    """medico may not write a file where asked, or could not finish writing it; the message names the file."""


_NODE_KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}

_DISK_ERRORS = {
    errno.ENOSPC: "disk full while writing {}: free some space and run the command again",
    errno.EDQUOT: "disk quota exceeded while writing {}: free some space and run the command again",
    errno.EROFS: "cannot write {}: the file system is read-only",
}

_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_TEMPORARY = re.compile(r"^\..*\.medico-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-")
_swept: set[Path] = set()
"""Folders already cleared of dead writers' temporaries by this process (once per folder is enough)."""


def check_target(path: Path, *, replace: bool = False) -> Path:
    """``path`` if medico may write a regular file there: nothing is there yet, or a regular file and ``replace``.

    A symbolic link is refused even when it leads to a regular file: medico would replace the link, or write
    through it into a file nobody named. Folders, pipes, devices and sockets are refused: a regular file put in
    their place would break whatever uses them (``--output /dev/null`` run as root).

    Raises:
        OutputError: something other than a regular file is at ``path``, or a file is there and not ``replace``.
    """
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return path
    except NotADirectoryError as error:
        raise _not_a_folder(path.parent) from error
    if stat.S_ISREG(mode):
        if replace:
            return path
        raise OutputError(f"{path} already exists; pass --force to replace it")
    kind = f"a symbolic link (to {os.readlink(path)})" if stat.S_ISLNK(mode) else _NODE_KINDS.get(stat.S_IFMT(mode))
    raise OutputError(
        f"{path} is {kind or 'not a regular file'}: medico writes only regular files; choose another path"
    )


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str = ".tmp", *, replace: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` when the block succeeds, else deleted.

    Args:
        path: the file to write; it must pass :func:`check_target` (a regular file, or nothing yet).
        suffix: the temporary's suffix (for writers that add their own, such as ``np.save``).
        replace: replace an existing regular file: True for medico's own files (run records, checkpoints,
            caches), the user's ``--force`` for files a user named (exports, masks, archives).

    Raises:
        OutputError: the target is refused, its folder cannot be written, or the disk filled up while writing.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "scores.csv"
        >>> with atomic_path(target) as tmp:
        ...     _ = tmp.write_text("dice\\n0.9\\n")
        >>> target.read_text()
        'dice\\n0.9\\n'
    """
    path = check_target(Path(path), replace=replace)
    _prepare_folder(path.parent)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=_temporary_prefix(path.name), suffix=suffix, dir=path.parent)
    except OSError as error:
        raise _unwritable(path.parent, error) from error
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(0o666 & ~_umask())  # mkstemp makes files private; results are shared like any other file
    try:
        with _writing(path):
            yield tmp
            os.replace(tmp, check_target(path, replace=replace))
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_folder(folder: Path, *, replace: bool = False) -> Iterator[Path]:
    """A private staging folder inside ``folder`` to write a set of files into; its files are moved into ``folder``
    when the block succeeds (renames need no space), else it is deleted: ``folder`` gets every file or none.

    Each file moved in must pass :func:`check_target` with ``replace``; a full disk while writing is an
    :class:`OutputError` naming ``folder``.
    """
    folder = Path(folder)
    _prepare_folder(folder)
    try:
        staging = Path(tempfile.mkdtemp(prefix=_temporary_prefix("staging"), suffix=".tmp", dir=folder))
    except OSError as error:
        raise _unwritable(folder, error) from error
    try:
        with _writing(f"files into {folder}"):
            yield staging
            names = sorted(os.listdir(staging))
            for name in names:
                check_target(folder / name, replace=replace)
            for name in names:
                os.replace(staging / name, folder / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_atomic(path: Path, data: bytes | str, *, replace: bool = False) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically (``replace`` as in :func:`atomic_path`); returns it."""
    with atomic_path(path, replace=replace) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


def disk_error(error: OSError, path: Path | str | None = None) -> OutputError | None:
    """The one-line error for a full disk, an exceeded quota or a read-only file system while writing ``path``
    (default: the file the error names); None for any other error."""
    message = _DISK_ERRORS.get(error.errno)  # type: ignore[arg-type]
    return None if message is None else OutputError(message.format(path or error.filename or "a file"))


def is_file(path: Path | str) -> bool:
    """Whether ``path`` is a file, following links (a dangling link is not one).

    Raises:
        MedicoError: ``path`` is a symbolic link loop, named rather than silently skipped.
    """
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise MedicoError(f"{path}: a symbolic link loop (following it never reaches a file)") from error
        return False


@contextlib.contextmanager
def _writing(path: Path | str) -> Iterator[None]:
    """Turn a full disk (or a read-only file system) while writing ``path`` into an :class:`OutputError`."""
    try:
        yield
    except OSError as error:
        failure = disk_error(error, path)
        if failure is None:
            raise
        raise failure from error


def _prepare_folder(folder: Path) -> None:
    """Create ``folder`` if needed and clear dead writers' temporaries from it; a clear error when it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as error:
        raise _not_a_folder(folder) from error
    except OSError as error:
        raise _unwritable(folder, error) from error
    if folder not in _swept and os.name == "posix":
        _swept.add(folder)
        _remove_dead_temporaries(folder)


def _remove_dead_temporaries(folder: Path) -> None:
    """Delete the temporaries in ``folder`` whose writer, a process of this host, no longer runs (killed)."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            match = _TEMPORARY.match(entry.name)
            if match is None or match["host"] != _HOST or process_alive(int(match["pid"])):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host still runs."""
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        pass
    return True


def _temporary_prefix(name: str) -> str:
    """The start of a temporary's name: hidden, then what it becomes, then its writer's host and process id."""
    return f".{name}.medico-{_HOST}-{os.getpid()}-"


def _unwritable(folder: Path, error: OSError) -> OutputError:
    return disk_error(error, folder) or OutputError(f"cannot write into {folder}: {error.strerror}")


def _not_a_folder(folder: Path) -> OutputError:
    """The error for a ``folder`` that is, or lies below, something other than a folder (a file, say)."""
    blocking = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
    return OutputError(f"cannot write into {folder}: {'it' if blocking == folder else blocking} is not a folder")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
