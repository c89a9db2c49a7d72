"""Kvasir-SEG and sets laid out like it: ``images/`` and ``masks/`` whose files match by stem.

Kvasir-SEG ships JPEG images and JPEG masks of the same names, ``kavsir_bboxes.json`` and (in this
harness) ``splits/medico2020/{train,val}.txt``; CVC-ClinicDB and others use PNG or TIFF masks.
"""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath

import numpy as np

from medico.data import io, masks
from medico.data.dataset import DataError, PolypDataset, Problem
from medico.data.storage import Storage, StorageError

__all__ = ["KvasirDataset"]


def _by_stem(storage: Storage, folder: str, what: str, problems: list[Problem]) -> dict[str, str]:
    """Image files of ``folder`` by stem; a second file with the same stem is reported and ignored."""
    found: dict[str, str] = {}
    for relative in storage.files(folder):
        path = PurePosixPath(relative)
        if path.suffix.lower() not in io.IMAGE_SUFFIXES:
            continue
        if path.stem in found:
            problems.append(
                Problem(storage.label(relative), f"second {what} named {path.stem!r} (using {found[path.stem]})")
            )
            continue
        found[path.stem] = relative
    return found


class KvasirDataset(PolypDataset):
    """Pairs of ``images/NAME.*`` and ``masks/NAME.*`` in a folder or zip archive.

    ``problems`` lists what the file listing alone reveals (unpaired files, duplicate stems, unsafe archive
    members); :func:`medico.data.checks.check_dataset` adds what decoding reveals.
    """

    is_synthetic = False

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        problems = [Problem(f"{storage.location}:{m}", "unsafe archive member refused") for m in storage.unsafe]
        images = _by_stem(storage, "images", "image", problems)
        masks = _by_stem(storage, "masks", "mask", problems)
        problems += [Problem(storage.label(images[n]), "image without mask") for n in sorted(images.keys() - masks)]
        problems += [Problem(storage.label(masks[n]), "mask without image") for n in sorted(masks.keys() - images)]
        self.names = tuple(sorted(images.keys() & masks.keys()))
        self.image_files = {name: images[name] for name in self.names}
        self.mask_files = {name: masks[name] for name in self.names}
        self.problems = tuple(problems)
        self.description = f"Kvasir-SEG {storage.kind} {storage.location} ({len(self.names)} pairs)"
        self.recommended = {}
        self._hashes: dict[str, tuple[tuple[tuple[int, int], tuple[int, int]], str]] = {}

    def _image(self, name: str) -> str:
        self.check_name(name)
        return self.image_files[name]

    def read_image(self, name: str) -> np.ndarray:
        relative = self._image(name)
        return io.read_rgb(self.storage.source(relative), label=self.storage.label(relative))

    def read_mask(self, name: str) -> np.ndarray:
        """The mask, read as the organisers read it (:mod:`.masks`); a size other than its image's is an error."""
        self.check_name(name)
        relative = self.mask_files[name]
        mask = masks.read_mask(self.storage.source(relative), label=self.storage.label(relative))
        if mask.shape != self.image_size(name):
            height, width = self.image_size(name)
            raise DataError(
                f"{self.storage.label(relative)}: mask is {mask.shape[1]}x{mask.shape[0]}, "
                f"its image {self.storage.label(self.image_files[name])} is {width}x{height}"
            )
        return mask

    def image_size(self, name: str) -> tuple[int, int]:
        relative = self._image(name)
        return io.image_size(self.storage.source(relative), label=self.storage.label(relative))

    def _stamps(self, name: str) -> tuple[tuple[int, int], tuple[int, int]]:
        relative = self._image(name)
        try:
            return self.storage.stamp(relative), self.storage.stamp(self.mask_files[name])
        except OSError as error:
            raise DataError(f"{self.storage.label(relative)}: cannot read ({error})") from error

    def content_hash(self, name: str) -> str:
        """SHA-256 of the image and mask bytes; recomputed when either file's size or modification time changes."""
        stamps = self._stamps(name)
        cached = self._hashes.get(name)
        if cached is not None and cached[0] == stamps:
            return cached[1]
        digest = hashlib.sha256()
        for relative in (self.image_files[name], self.mask_files[name]):
            data = self.storage.read_bytes(relative)
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)
        self._hashes[name] = (stamps, digest.hexdigest())
        return self._hashes[name][1]

    def file_sizes(self, name: str) -> tuple[int, int]:
        image_stamp, mask_stamp = self._stamps(name)
        return image_stamp[0], mask_stamp[0]

    def read_text(self, relative: str) -> str | None:
        if not self.storage.exists(relative):
            return None
        try:
            return self.storage.read_bytes(relative).decode("utf-8-sig")
        except (UnicodeDecodeError, StorageError) as error:
            raise DataError(f"{self.storage.label(relative)}: not a readable UTF-8 text file ({error})") from error
