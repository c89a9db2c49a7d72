"""Which dataset a ``--data`` value means: nothing (synthetic), a folder, or a zip archive."""

from __future__ import annotations

import zipfile
from pathlib import Path

from medico.data.dataset import DataError, PolypDataset
from medico.data.kvasir import KvasirDataset
from medico.data.storage import FolderStorage, Storage, StorageError, ZipStorage
from medico.data.synthetic import SyntheticDataset

__all__ = ["open_dataset", "open_kvasir"]

_LAYOUT = "a folder (or .zip) with images/ and masks/ whose files match by name, as Kvasir-SEG is distributed"


def _folder_storage(path: Path) -> Storage:
    """The folder itself, or its single subfolder holding images/ and masks/ (an unpacked archive's top); given its
    images/ or masks/, the error names the dataset folder above."""
    if (path / "images").is_dir() and (path / "masks").is_dir():
        return FolderStorage(path)
    inner = [p for p in path.iterdir() if p.is_dir() and (p / "images").is_dir() and (p / "masks").is_dir()]
    if len(inner) == 1:
        return FolderStorage(inner[0])
    found = ", ".join(sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())[:8]) or "nothing"
    above = path.parent
    hint = f"; did you mean {above}?" if (above / "images").is_dir() and (above / "masks").is_dir() else ""
    raise DataError(f"{path}: expected {_LAYOUT}; found {found}{hint}")


def _zip_storage(path: Path) -> Storage:
    try:
        storage = ZipStorage(path)
    except StorageError as error:
        raise DataError(str(error)) from error
    if not (storage.has_folder("images") and storage.has_folder("masks")):
        raise DataError(f"{path}: expected {_LAYOUT}; the archive has no images/ and masks/ folders")
    return storage


def open_dataset(path: str | Path | None) -> PolypDataset:
    """The dataset at ``path``; None means the built-in synthetic polyp set.

    No seed: a run's data never depends on its ``--seed``, so runs differing only in seed train and are scored
    on the same images, and reopening a run's data gives what it trained on.

    Raises:
        DataError: the path does not exist, is not laid out like Kvasir-SEG, or holds no image/mask pair.
    """
    return SyntheticDataset() if path is None else open_kvasir(path)


def open_kvasir(path: str | Path) -> KvasirDataset:
    """The Kvasir-SEG-style folder or zip at ``path`` (see :func:`open_dataset`)."""
    path = Path(path).expanduser()
    if path.is_dir():
        storage = _folder_storage(path)
    elif path.is_file() and zipfile.is_zipfile(path):
        storage = _zip_storage(path)
    elif path.exists():
        raise DataError(f"{path}: expected {_LAYOUT}; found a file that is not a zip archive")
    elif path.is_symlink():
        raise DataError(f"{path}: a symbolic link that leads nowhere (dangling, or a loop); expected {_LAYOUT}")
    else:
        raise DataError(f"{path}: no such file or folder (expected {_LAYOUT})")
    dataset = KvasirDataset(storage)
    if not dataset.names:
        images, masks = len(storage.files("images")), len(storage.files("masks"))
        raise DataError(
            f"{storage.location}: no image/mask pairs (images/ holds {images} files, masks/ {masks}; "
            "an image and its mask must have the same name stem)"
        )
    return dataset
