"""``medico data check``: decode every pair of a dataset and report its statistics and every defect by file.

Defects: an image without mask or a mask without image, an unreadable or truncated file, a
decompression-bomb sized image, a mask whose size differs from its image, a mask that the organisers' rule
cannot read as binary (:mod:`medico.data.masks`), and split lists that name missing files or overlap.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from medico.data import io, masks
from medico.data.dataset import DataError, PolypDataset, Problem
from medico.data.kvasir import KvasirDataset
from medico.data.resolve import open_kvasir
from medico.data.splits import resolve_split
from medico.data.storage import StorageError

__all__ = ["DatasetReport", "PairStats", "check_dataset"]

_BBOXES = "kavsir_bboxes.json"


@dataclass(frozen=True)
class PairStats:
    """What decoding one pair found: its size and foreground fraction (None when it could not be read)."""

    name: str
    size: tuple[int, int] | None
    foreground: float | None
    problems: tuple[Problem, ...]


@dataclass
class DatasetReport:
    """Statistics of a dataset and the list of its problems; ``usable`` when it has pairs and no problem."""

    description: str
    pairs: list[PairStats]
    splits: dict[str, str] = field(default_factory=dict)
    bboxes: int | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """``(height, width)`` of every readable pair."""
        return [p.size for p in self.pairs if p.size is not None]

    @property
    def foregrounds(self) -> list[float]:
        """The polyp fraction of every readable mask."""
        return [p.foreground for p in self.pairs if p.foreground is not None]

    @property
    def empty_masks(self) -> list[str]:
        """Names whose mask holds no polyp pixel (allowed, but worth knowing: they score by the empty policy)."""
        return [p.name for p in self.pairs if p.foreground == 0.0]

    @property
    def usable(self) -> bool:
        return bool(self.pairs) and not self.problems


def _check_pair(dataset: KvasirDataset, name: str) -> PairStats:
    """Decode one pair fully (truncation shows only then) and compare the mask with its image."""
    storage = dataset.storage
    image_file, mask_file = (storage.label(dataset.image_files[name]), storage.label(dataset.mask_files[name]))
    problems: list[Problem] = []
    image = mask = None
    try:
        image = io.read_rgb(storage.source(dataset.image_files[name]), label=image_file)
    except (io.ImageReadError, StorageError) as error:
        problems.append(Problem(image_file, str(error).removeprefix(f"{image_file}: ")))
    try:
        mask = masks.read_mask(storage.source(dataset.mask_files[name]), label=mask_file)
    except (io.ImageReadError, StorageError) as error:
        problems.append(Problem(mask_file, str(error).removeprefix(f"{mask_file}: ")))
    if image is not None and mask is not None and image.shape[:2] != mask.shape:
        problems.append(
            Problem(
                mask_file,
                f"mask is {mask.shape[1]}x{mask.shape[0]}, its image is {image.shape[1]}x{image.shape[0]}",
            )
        )
    foreground = float(mask.mean()) if mask is not None else None
    return PairStats(name, image.shape[:2] if image is not None else None, foreground, tuple(problems))


def _check_splits(dataset: PolypDataset) -> tuple[dict[str, str], list[Problem]]:
    """Split sizes by name; broken split lists are problems, absent official lists are only noted."""
    found: dict[str, str] = {}
    problems: list[Problem] = []
    for name in ("medico2020", "random"):
        try:
            split = resolve_split(dataset, name)
        except DataError as error:
            if name == "medico2020" and dataset.read_text("splits/medico2020/train.txt") is None:
                found[name] = "absent (no splits/medico2020/ lists)"
            else:
                problems.append(Problem("splits/" + name, str(error)))
            continue
        found[name] = f"{len(split.train)} train / {len(split.val)} val"
    return found, problems


def _count_bboxes(dataset: PolypDataset) -> tuple[int | None, list[Problem]]:
    try:
        text = dataset.read_text(_BBOXES)
        if text is None:
            return None, []
        boxes = json.loads(text)
    except (DataError, json.JSONDecodeError) as error:
        return None, [Problem(_BBOXES, f"not readable JSON ({error})")]
    return (len(boxes) if isinstance(boxes, dict) else None), []


def check_dataset(
    path: str | Path, *, progress: Callable[[int, int], None] | None = None, threads: int | None = None
) -> DatasetReport:
    """Decode every pair of the dataset at ``path`` and collect its statistics and problems.

    Args:
        path: a Kvasir-SEG-style folder or zip (see :func:`medico.data.resolve.open_kvasir`).
        progress: called with (pairs checked, total) as the check goes.
        threads: decoding threads (default: up to 4, as many as there are CPU cores).

    Raises:
        DataError: the path is not a dataset at all (the report needs at least its layout).
    """
    dataset = open_kvasir(path)
    threads = threads or min(4, os.cpu_count() or 1)
    pairs: list[PairStats] = []
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for done, stats in enumerate(pool.map(lambda n: _check_pair(dataset, n), dataset.names), start=1):
            pairs.append(stats)
            if progress is not None:
                progress(done, len(dataset.names))
    problems = list(dataset.problems) + [p for stats in pairs for p in stats.problems]
    splits, split_problems = _check_splits(dataset)
    bboxes, bbox_problems = _count_bboxes(dataset)
    return DatasetReport(
        description=dataset.description,
        pairs=pairs,
        splits=splits,
        bboxes=bboxes,
        problems=problems + split_problems + bbox_problems,
    )
