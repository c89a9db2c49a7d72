"""Which data a run was trained and validated on: its record, and the one function that reopens it.

When training starts a run records its dataset (description, fingerprint) and split (name, digest, the training
and validation names) in ``dataset.json``; every checkpoint it writes carries the same record, so a checkpoint
copied out of its run still knows. :func:`run_data` reopens a run's data from that record for resuming,
evaluating and drawing it: it opens the recorded ``--data`` as a new run opens it (never depending on
``--seed``: :func:`medico.data.open_dataset` and :func:`medico.data.resolve_split` take no seed), refuses data
whose fingerprint differs from the record, and takes the held-out names from the record itself. Other data or
another split are used only when asked for with ``--data``/``--split``, and then the result says so.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medico.data import DataError, PolypDataset, Split, open_dataset, resolve_split
from medico.data.splits import checked_split
from medico.errors import MedicoError, some
from medico.runs.folder import RunFolder

if TYPE_CHECKING:  # reading a record (medico compare) needs no torch
    from medico.runs.checkpoint import Checkpoint

__all__ = [
    "ALL_IMAGES",
    "OWN_SPLIT",
    "DataRecord",
    "OtherDataError",
    "RunData",
    "ensemble_data",
    "recorded_data",
    "run_data",
]

OWN_SPLIT = "val"
"""The ``--split`` value meaning the run's own split (its recorded validation names)."""
_CHECKPOINT_KEY = "data_record"
"""Where a checkpoint's ``metrics`` keep the record of the data its scores were measured on."""


class OtherDataError(MedicoError):
    """A run's recorded dataset is not the one found, or a record cannot be read."""


@dataclass(frozen=True)
class DataRecord:
    """What a run recorded about its data: the dataset's description and fingerprint, and its split's names."""

    description: str
    synthetic: bool
    fingerprint: str
    n_images: int
    split: Split

    @classmethod
    def of(cls, dataset: PolypDataset, split: Split) -> DataRecord:
        """The record of training on ``split`` of ``dataset``."""
        return cls(dataset.description, bool(dataset.is_synthetic), dataset.fingerprint(), len(dataset.names), split)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the content of ``dataset.json``."""
        return {
            "description": self.description,
            "synthetic": self.synthetic,
            "fingerprint": self.fingerprint,
            "n_images": self.n_images,
            "split": {
                "name": self.split.name,
                "digest": self.split.digest,
                "n_train": len(self.split.train),
                "n_val": len(self.split.val),
                "train": list(self.split.train),
                "val": list(self.split.val),
            },
        }

    @classmethod
    def from_dict(cls, values: Any, source: str) -> DataRecord:
        """A record read back; one that is malformed, or whose names do not match its digest, is refused."""
        try:
            split = values["split"]
            record = cls(
                description=str(values["description"]),
                synthetic=bool(values["synthetic"]),
                fingerprint=str(values["fingerprint"]),
                n_images=int(values["n_images"]),
                split=Split(str(split["name"]), _names(split["train"]), _names(split["val"])),
            )
            digest = split["digest"]
        except (KeyError, TypeError, ValueError) as error:
            raise OtherDataError(f"{source}: not a dataset record ({type(error).__name__}: {error})") from error
        if record.split.digest != digest:
            raise OtherDataError(f"{source}: the split's names do not match its digest {str(digest)[:12]}...")
        return record

    @classmethod
    def read(cls, run: RunFolder) -> DataRecord | None:
        """The record in a run's ``dataset.json``; None for a run that has none."""
        if not run.dataset.is_file():
            return None
        try:
            values = json.loads(run.dataset.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise OtherDataError(f"{run.dataset}: cannot read ({error})") from error
        return cls.from_dict(values, str(run.dataset))

    @classmethod
    def of_checkpoint(cls, checkpoint: Checkpoint, source: str) -> DataRecord | None:
        """The record a checkpoint carries; None for checkpoints written before records were kept in them."""
        values = checkpoint.metrics.get(_CHECKPOINT_KEY)
        return None if values is None else cls.from_dict(values, f"{source} (its data record)")

    def checkpoint_metrics(self) -> dict[str, Any]:
        """What a checkpoint's ``metrics`` hold so that :meth:`of_checkpoint` finds this record."""
        return {_CHECKPOINT_KEY: self.as_dict()}


def recorded_data(checkpoint: Checkpoint, run: RunFolder | None, source: str) -> DataRecord | None:
    """The record of the data ``checkpoint`` was trained on: its run's ``dataset.json``, else the record the checkpoint
    carries (``run`` None: a file kept outside a run); None when neither exists (an older medico wrote them).

    Raises:
        OtherDataError: a record that cannot be read, naming its file (``source`` for the checkpoint's own).
    """
    return (DataRecord.read(run) if run is not None else None) or DataRecord.of_checkpoint(checkpoint, source)


def _names(values: Any) -> tuple[str, ...]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise TypeError("expected a list of names")
    return tuple(values)


@dataclass(frozen=True)
class RunData:
    """The dataset and split to use for a run; ``other`` says how they differ from the run's record (None: not)."""

    dataset: PolypDataset
    split: Split
    other: str | None = None

    def check_held_out(self, names: Iterable[str], source: str) -> None:
        """Refuse scores ``source`` holds for images that are not this split's validation images (a per_image.csv
        edited to list training images would have them shown as validation images)."""
        others = sorted(set(names) - set(self.split.val))
        if others:
            raise OtherDataError(
                f"{source}: scores {len(others)} images that are not validation images of split {self.split.name} "
                f"of {self.dataset.description}: {some(others)}"
            )

    def as_dict(self) -> dict[str, Any]:
        """What results say about the data they were scored on (``metrics.json``'s ``data``)."""
        return {
            "description": self.dataset.description,
            "fingerprint": self.dataset.fingerprint(),
            "split": self.split.name,
            "split_digest": self.split.digest,
            "n_val": len(self.split.val),
            "other_data": self.other is not None,
            "note": self.other,
        }


ALL_IMAGES = "all"
"""``--split all``: score every image/mask pair of the dataset (another labelled set, not a run's own split)."""


def run_data(
    checkpoint: Checkpoint,
    run: RunFolder | None = None,
    *,
    source: str = "the checkpoint",
    data: str | Path | None = None,
    split: str | None = None,
) -> RunData:
    """The dataset and split ``checkpoint`` was trained and validated on, from its run's record.

    Args:
        checkpoint: the run's checkpoint (its config names the ``--data`` it trained on).
        run: the run it belongs to (its ``dataset.json`` is the record), or None for a checkpoint kept elsewhere
            (the record it carries is used).
        source: how messages name the run or checkpoint.
        data, split: ``--data`` and ``--split`` given explicitly (None, and split ``val``: the run's own; ``all``:
            every pair of the dataset).

    Without ``data``/``split`` the recorded dataset is opened and must have the recorded fingerprint; the split is
    the recorded one. A checkpoint without any record (written by an older medico) gets its split derived from its
    config, as training derived it. With ``data``/``split`` those are used, and ``other`` says what differs.

    Raises:
        OtherDataError: the recorded dataset's fingerprint differs from the record, and neither was given.
        DataError: the dataset cannot be opened or the split resolved.
    """
    if run is not None:
        source = f"run {run.name}"
    record = recorded_data(checkpoint, run, source)
    config: Mapping[str, Any] = checkpoint.config
    own_split = split in (None, OWN_SPLIT)
    trained_on = config.get("data")
    dataset = open_dataset(data) if data is not None else _open_recorded(trained_on, source)
    same_data = record is not None and dataset.fingerprint() == record.fingerprint
    if record is not None and not same_data and data is None and own_split:
        raise OtherDataError(
            f"{source} was trained on {record.description} (fingerprint {record.fingerprint[:12]}...), but "
            f"{_where(trained_on)} now holds {dataset.description} (fingerprint {dataset.fingerprint()[:12]}...): "
            "the data changed since. Pass --data (and --split) to score it on other data anyway"
        )
    if record is not None and same_data and own_split:
        return RunData(dataset, _recorded_split(record, dataset, config, source))
    if split == ALL_IMAGES:  # another labelled set scored whole (another centre's frames): nothing trains on it
        chosen = Split(ALL_IMAGES, (), tuple(sorted(dataset.names)))
    else:
        chosen = resolve_split(dataset, str(config.get("split", "auto")) if own_split else str(split))
    if record is None:  # written by an older medico: the split derived from its config, as training derived it
        unchecked = f"other data: {source} records no dataset to check them against"
        return RunData(dataset, chosen, unchecked if data is not None or not own_split else None)
    if same_data and chosen.digest == record.split.digest:
        return RunData(dataset, chosen)
    return RunData(dataset, chosen, _other(source, record, dataset, chosen))


def ensemble_data(
    paths: Sequence[Path],
    checkpoints: Sequence[Checkpoint],
    *,
    data: str | Path | None = None,
    split: str | None = None,
) -> RunData:
    """The data an ensemble of ``checkpoints`` (from ``paths``) is scored on: :func:`run_data` of each member, which
    must all be the same images of the same dataset; ``other`` says how any member's record differs from them.

    Raises:
        OtherDataError: members validated on different images (folds of a sweep, runs of other splits), unless
            ``data``/``split`` choose images for all of them; and :func:`run_data`'s errors, naming the member.
    """
    chosen = [
        run_data(checkpoint, RunFolder.containing(path), source=f"checkpoint {path}", data=data, split=split)
        for path, checkpoint in zip(paths, checkpoints)
    ]
    first = chosen[0]
    for path, each in zip(paths[1:], chosen[1:]):
        if each.dataset.fingerprint() != first.dataset.fingerprint() or each.split.val != first.split.val:
            raise OtherDataError(
                f"ensemble: {paths[0]} is validated on {len(first.split.val)} images of split {first.split.name} but "
                f"{path} on {len(each.split.val)} of split {each.split.name}; pass --split (and --data) to score "
                "every member on the same images"
            )
    others = [each.other for each in chosen if each.other is not None]
    return RunData(first.dataset, first.split, "; ".join(dict.fromkeys(others)) if others else None)


def _recorded_split(record: DataRecord, dataset: PolypDataset, config: Mapping[str, Any], source: str) -> Split:
    """The split ``source`` recorded, once shown to be the one its settings make of ``dataset``.

    A record is a file anyone can edit, and one listing training images as validation would have them scored as
    such. Where the split can be made again (medico2020, random, a split folder still there) it must be the recorded
    one; otherwise (the folder is gone) its names must make a split of ``dataset`` as any split's do.
    """
    try:
        made = resolve_split(dataset, str(config.get("split", "auto")))
    except DataError:  # a user's split folder gone since: the record's names are all there is
        train, val = record.split.train, record.split.val
        return checked_split(dataset, record.split.name, train, val, f"as {source} recorded it")
    if made.digest != record.split.digest:
        trained = set(made.train)
        leaked = sum(name in trained for name in record.split.val)
        raise OtherDataError(
            f"{source}: its record holds out {len(record.split.val)} images, {leaked} of them training images of its "
            f"split {made.name} of {dataset.description} (which holds out {len(made.val)}): the record or the split "
            "changed since training. Pass --split to score it on a split of your choice"
        )
    return record.split


def _open_recorded(data: str | None, source: str) -> PolypDataset:
    """The dataset a run recorded, with an error that says whose dataset is missing and how to go on."""
    try:
        return open_dataset(data)
    except DataError as error:
        message = f"{source} was trained on {_where(data)}: {error}; pass --data to say where it is now"
        raise DataError(message) from error


def _where(data: str | None) -> str:
    return f"--data {data}" if data is not None else "the built-in synthetic set"


def _other(source: str, record: DataRecord, dataset: PolypDataset, split: Split) -> str:
    """The note results carry when scored on other data or another split than ``source`` recorded."""
    trained = set(record.split.train)
    leaked = sum(name in trained for name in split.val)
    return (
        f"other data: {source} was validated on {record.description} (fingerprint {record.fingerprint[:12]}..., "
        f"split {record.split.name}); these results are on {dataset.description} (fingerprint "
        f"{dataset.fingerprint()[:12]}..., split {split.name}), and {leaked} of their {len(split.val)} images were "
        f"training images of {source}"
    )
