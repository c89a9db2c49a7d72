"""Train/validation splits: the organisers' Medico 2020 lists, a seeded random 80:20 split, or a user's files."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from medico.data.dataset import DataError, PolypDataset
from medico.data.io import IMAGE_SUFFIXES
from medico.errors import some

__all__ = [
    "SPLIT_NAMES",
    "VAL_FRACTION",
    "Split",
    "checked_split",
    "parse_split_list",
    "read_split_list",
    "random_split",
    "resolve_split",
    "split_folder_files",
]

SPLIT_NAMES = ("auto", "medico2020", "random")
VAL_FRACTION = 0.2
"""The source paper's 80:20 ratio for the random split."""
_MEDICO2020 = "splits/medico2020/{part}.txt"
_PARTS = ("train", "val")


def split_folder_files(folder: Path) -> dict[str, Path]:
    """The lists of a user's split folder, ``{"train": folder/train.txt, "val": folder/val.txt}``.

    Raises:
        DataError: a list is missing (the message names it).
    """
    files = {part: Path(folder) / f"{part}.txt" for part in _PARTS}
    missing = [str(path) for path in files.values() if not path.is_file()]
    if missing:
        raise DataError(f"split folder {folder}: {' and '.join(missing)} missing (expected train.txt and val.txt)")
    return files


@dataclass(frozen=True)
class Split:
    """Which names train and which validate; ``digest`` identifies the partition (not its label)."""

    name: str
    train: tuple[str, ...]
    val: tuple[str, ...]

    @property
    def digest(self) -> str:
        """SHA-256 hex over the train names then the validation names."""
        text = "train\n" + "\n".join(self.train) + "\nval\n" + "\n".join(self.val) + "\n"
        return hashlib.sha256(text.encode()).hexdigest()


def random_split(names: Sequence[str], *, seed: int = 0, val_fraction: float = VAL_FRACTION) -> Split:
    """A seeded split of the sorted names; both parts sorted. The same names and seed give the same split anywhere.

    At least one name goes to each side when there are two or more.
    """
    ordered = sorted(set(names))
    count = len(ordered)
    val_count = min(max(round(count * val_fraction), 1), count - 1) if count >= 2 else 0
    chosen = set(np.random.default_rng(seed).permutation(count)[:val_count].tolist())
    return Split(
        name="random",
        train=tuple(n for i, n in enumerate(ordered) if i not in chosen),
        val=tuple(n for i, n in enumerate(ordered) if i in chosen),
    )


def parse_split_list(text: str, source: str) -> tuple[str, ...]:
    """Names, one a line, from a split file; blank lines and ``#`` comments skipped, image suffixes dropped.

    A name listed twice is an error naming ``source``.
    """
    names: list[str] = []
    for line in text.splitlines():
        name = line.split("#", 1)[0].strip()
        if not name:
            continue
        if PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES:
            name = PurePosixPath(name).stem
        names.append(name)
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)  # one pass: lists may be long
    if repeated:
        raise DataError(f"{source}: names listed more than once: {some(repeated, 5)}")
    return tuple(names)


def read_split_list(path: Path) -> tuple[str, ...]:
    """The names a split file lists (see :func:`parse_split_list`).

    Raises:
        DataError: the file cannot be read as UTF-8 text, or lists a name twice.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"split file {path}: cannot read ({error})") from error
    return parse_split_list(text, str(path))


def checked_split(dataset: PolypDataset, name: str, train: tuple[str, ...], val: tuple[str, ...], where: str) -> Split:
    """The split, after refusing names that are not on disk, names on both sides, and an empty side."""
    known = set(dataset.names)
    for part, names in (("train", train), ("val", val)):
        missing = [n for n in names if n not in known]
        if missing:
            raise DataError(
                f"split {name} ({where}): {len(missing)} {part} names are not in {dataset.description}: "
                f"{some(missing, 5)}"
            )
        if not names:
            raise DataError(f"split {name} ({where}): the {part} list is empty")
    overlap = sorted(set(train) & set(val))
    if overlap:
        raise DataError(f"split {name} ({where}): {len(overlap)} names are in both train and val: {some(overlap, 5)}")
    return Split(name=name, train=train, val=val)


def _medico2020(dataset: PolypDataset) -> Split | None:
    """The organisers' lists read from the dataset, or None when it has neither."""
    texts = {part: dataset.read_text(_MEDICO2020.format(part=part)) for part in _PARTS}
    if all(text is None for text in texts.values()):
        return None
    absent = [_MEDICO2020.format(part=p) for p, text in texts.items() if text is None]
    if absent:
        raise DataError(f"split medico2020: {dataset.description} lacks {', '.join(absent)}")
    lists = {p: parse_split_list(t or "", _MEDICO2020.format(part=p)) for p, t in texts.items()}
    return checked_split(dataset, "medico2020", lists["train"], lists["val"], "splits/medico2020/ of the dataset")


def resolve_split(
    dataset: PolypDataset,
    name: str = "medico2020",
    *,
    files: Mapping[str, Path] | None = None,
) -> Split:
    """The split called ``name`` of ``dataset``, or the one in ``files`` ({"train": path, "val": path}).

    ``medico2020`` reads ``splits/medico2020/{train,val}.txt`` from the dataset; ``random`` is the 80:20 split of
    :func:`random_split` with its fixed seed (never a run's ``--seed``: runs differing only in seed validate on
    the same images); ``auto`` is medico2020 where the dataset has it, else random; any other ``name`` is a
    folder holding a user's ``train.txt`` and ``val.txt``.

    Raises:
        DataError: unknown name, lists absent or unreadable, names not in the dataset, overlap, an empty side.
    """
    if files is not None:
        if set(files) != set(_PARTS):
            raise DataError(f"split files: expected train= and val= files, got {', '.join(sorted(files)) or 'none'}")
        lists = {part: read_split_list(Path(files[part])) for part in _PARTS}
        where = f"{files['train']}, {files['val']}"
        return checked_split(dataset, "files", lists["train"], lists["val"], where)
    if name not in SPLIT_NAMES:
        folder = Path(name).expanduser()
        if folder.is_dir():
            return resolve_split(dataset, files=split_folder_files(folder))
        raise DataError(
            f"--split: expected one of {', '.join(SPLIT_NAMES)} or a folder holding train.txt and val.txt, "
            f"got {name!r}"
        )
    official = None if name == "random" else _medico2020(dataset)
    if official is not None:
        return official
    if name in ("random", "auto"):
        split = random_split(dataset.names)
        return checked_split(dataset, "random", split.train, split.val, "random 80:20")
    hint = "use --split random (or auto)" if dataset.is_synthetic else "use --split random, or give split files"
    raise DataError(
        f"split medico2020: {dataset.description} has no splits/medico2020/train.txt and val.txt; {hint}"
    )
