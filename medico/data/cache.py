"""The decoded cache: each pair decoded and resized once, kept as a small uint8 ``.npy`` file.

Entries are keyed by the pair's content hash, the target size and the resizing convention, so a changed
file, another size or a new convention never reuses a stale entry. Decoding a 1920x1072 JPEG and shrinking it
costs tens of milliseconds; reading a 256x256 entry back costs about a third of one (a plain read of one flat
array whose two parts are views: no memory map, no copy).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from medico.data.dataset import DataError
from medico.data.masks import MASK_RULE
from medico.files import OutputError, atomic_path
from medico.weights import cache_dir

__all__ = ["CONVENTION", "DecodedCache"]

CONVENTION = f"resize_image:INTER_AREA;resize_mask:area>=0.5;v1;masks:{MASK_RULE}"
"""The resizing convention of :mod:`medico.engine.preprocess` and the mask reading rule, baked into every key; change it
when either changes (a 0/1 mask cached as empty under the old rule must not be reused)."""


class DecodedCache:
    """Resized image+mask pairs under ``root``, each one flat uint8 array: the ``(S, S, 3)`` RGB image, then the
    ``(S, S)`` mask as 0/1."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else cache_dir() / "decoded"

    @staticmethod
    def key(content_hash: str, size: int) -> str:
        """The entry key of a pair's content at ``size``."""
        return hashlib.sha256(f"{content_hash}:{size}:{CONVENTION}".encode()).hexdigest()

    def path(self, key: str, size: int) -> Path:
        """Where the entry for ``key`` lives."""
        return self.root / str(size) / key[:2] / f"{key}.npy"

    def get(self, key: str, size: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The cached (image, mask) or None; an unreadable or wrongly shaped entry counts as absent."""
        path = self.path(key, size)
        try:
            packed = np.load(path)
        except (OSError, ValueError):
            return None
        pixels = size * size * 3
        if packed.shape != (pixels + size * size,) or packed.dtype != np.uint8:
            return None
        return packed[:pixels].reshape(size, size, 3), packed[pixels:].reshape(size, size) > 0

    def put(self, key: str, size: int, image: np.ndarray, mask: np.ndarray) -> None:
        """Store an entry atomically (temporary file in the same folder, then rename)."""
        path = self.path(key, size)
        packed = np.concatenate([image.reshape(-1), mask.reshape(-1).astype(np.uint8)])
        try:
            with atomic_path(path, suffix=".npy", replace=True) as tmp:
                np.save(tmp, packed)
        except (OSError, OutputError) as error:  # OutputError: the folder cannot be written or the disk is full
            raise DataError(
                f"decoded cache {self.root}: cannot write ({getattr(error, 'strerror', None) or error}); "
                "set MEDICO_CACHE to a writable folder or turn the cache off"
            ) from error

    def usage(self) -> dict[int, tuple[int, int]]:
        """Per input size, the number of entries and their bytes on disk."""
        sizes: dict[int, tuple[int, int]] = {}
        for folder in self._size_folders():
            files = list(folder.glob("*/*.npy"))
            sizes[int(folder.name)] = (len(files), sum(f.stat().st_size for f in files))
        return dict(sorted(sizes.items()))

    def clear(self, size: int | None = None) -> int:
        """Delete the entries of one input size (all sizes when None); returns how many were deleted.

        Only entry files and the folders they leave empty are removed, never anything else under ``root``.
        """
        removed = 0
        for folder in self._size_folders():
            if size is not None and int(folder.name) != size:
                continue
            for entry in folder.glob("*/*.npy"):
                entry.unlink(missing_ok=True)
                removed += 1
            for shard in folder.iterdir():
                if shard.is_dir() and not any(shard.iterdir()):
                    shard.rmdir()
            if not any(folder.iterdir()):
                folder.rmdir()
        return removed

    def _size_folders(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [folder for folder in self.root.iterdir() if folder.is_dir() and folder.name.isdigit()]
