"""The dataset interface every source implements: named image/mask pairs at their original resolution."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from medico.errors import MedicoError

__all__ = ["DataError", "PolypDataset", "Problem"]


class DataError(MedicoError):
    """A dataset, split or data option is unusable; the message names the path and the problem."""


@dataclass(frozen=True)
class Problem:
    """One defect of a dataset: the file it concerns and what is wrong with it."""

    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


class PolypDataset(ABC):
    """Image/mask pairs by name (the file stem), read at their original resolution.

    Subclasses set ``names`` (sorted), ``description``, ``is_synthetic`` and ``recommended`` (training hints:
    ``{}`` for real data) and implement the readers.
    """

    names: tuple[str, ...]
    description: str
    is_synthetic: bool = False
    recommended: dict[str, Any]

    @abstractmethod
    def read_image(self, name: str) -> np.ndarray:
        """RGB uint8 ``(H, W, 3)``."""

    @abstractmethod
    def read_mask(self, name: str) -> np.ndarray:
        """bool ``(H, W)``, the same height and width as the image."""

    @abstractmethod
    def image_size(self, name: str) -> tuple[int, int]:
        """``(height, width)`` of the image, without decoding pixels where possible."""

    @abstractmethod
    def content_hash(self, name: str) -> str:
        """SHA-256 hex of the pair's content: it changes whenever the image or the mask changes."""

    @abstractmethod
    def file_sizes(self, name: str) -> tuple[int, int]:
        """Bytes of the image and of the mask as stored (0, 0 for generated pairs)."""

    def read_text(self, relative: str) -> str | None:
        """A text file stored with the dataset (e.g. ``splits/medico2020/train.txt``), or None when absent."""
        return None

    def fingerprint(self) -> str:
        """SHA-256 hex over the sorted names, file sizes and content hashes; computed once per instance."""
        cached = getattr(self, "_fingerprint", None)
        if cached is None:
            digest = hashlib.sha256()
            for name in self.names:
                image_bytes, mask_bytes = self.file_sizes(name)
                digest.update(f"{name}\0{image_bytes}\0{mask_bytes}\0{self.content_hash(name)}\n".encode())
            cached = self._fingerprint = digest.hexdigest()
        return cached

    def check_name(self, name: str) -> None:
        """Raise :class:`DataError` naming the dataset when ``name`` is not one of its pairs."""
        if name not in self._name_set():
            raise DataError(f"{self.description}: no image/mask pair named {name!r}")

    def _name_set(self) -> frozenset[str]:
        cached = getattr(self, "_names_frozen", None)
        if cached is None:
            cached = self._names_frozen = frozenset(self.names)
        return cached

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"
