"""Pretrained weights: where they come from, the download cache, and a loader that reports what it did."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from medico.download import DownloadError, Progress, check_sha256, download, file_sha256, sha256_matches
from medico.errors import MedicoError

if TYPE_CHECKING:  # torch is imported where tensors are read: the light commands never need it
    import torch
    from torch import nn

__all__ = [
    "LoadReport",
    "WeightsError",
    "WeightsSource",
    "cache_dir",
    "fetch_weights",
    "load_matching",
    "load_weights_only",
    "read_state_dict",
]


class WeightsError(MedicoError):
    """Weights could not be found, downloaded, verified or read."""


@dataclass(frozen=True)
class WeightsSource:
    """A local file, or a URL with its SHA-256 (full, or a prefix of >= 8 hex digits as torch hub uses)."""

    url: str | None = None
    sha256: str | None = None
    path: Path | None = None

    def __post_init__(self) -> None:
        """Refuse a source that could only fail when fetched (a URL that is no text, a digest that is no hex)."""
        if (self.url is None) == (self.path is None):
            raise ValueError("WeightsSource: give exactly one of url= or path=")
        if self.url is not None and not isinstance(self.url, str):
            raise ValueError(f"WeightsSource: url must be text, got {type(self.url).__name__}")
        if self.sha256 is not None:
            check_sha256(self.sha256)
        if self.path is not None:
            if not isinstance(self.path, str | os.PathLike):
                raise ValueError(f"WeightsSource: path must be a file path, got {type(self.path).__name__}")
            object.__setattr__(self, "path", Path(self.path))

    @property
    def filename(self) -> str:
        """The file's name in the cache (the URL's last path component)."""
        if self.path is not None:
            return Path(self.path).name
        return Path(urlparse(self.url).path).name or "weights.pt"


def cache_dir() -> Path:
    """Where downloads are kept: ``$MEDICO_CACHE``, else ``$XDG_CACHE_HOME/medico``, else ``~/.cache/medico``."""
    if os.environ.get("MEDICO_CACHE"):
        return Path(os.environ["MEDICO_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "medico"


def fetch_weights(source: WeightsSource, *, progress: Progress | None = None) -> Path:
    """The local path of ``source``'s file, downloading it into the cache on first use.

    A cached file whose hash does not match is downloaded again; a download whose hash does not match is
    deleted. Without network the error says where to put the file by hand.
    """
    if source.path is not None:
        path = Path(source.path)
        if not path.is_file():
            raise WeightsError(f"weights file {path} does not exist")
        return path
    target = cache_dir() / "weights" / source.filename
    if target.is_file() and (source.sha256 is None or sha256_matches(file_sha256(target), source.sha256)):
        return target
    try:
        return download(source.url, target, sha256=source.sha256, progress=progress)
    except DownloadError as error:
        raise WeightsError(
            f"{error}. Without network, download {source.url} elsewhere and put it at {target} "
            "(or set MEDICO_CACHE to a folder holding weights/" + source.filename + ")"
        ) from error


_ZIP_MAGIC = b"PK\x03\x04"
"""How a file torch reads as a zip archive begins (``torch.save``'s format since torch 1.6)."""


def load_weights_only(path: Path) -> Any:
    """What a torch file holds, read as medico reads every one: ``weights_only=True``, on the CPU, and never holding
    more bytes than the file has (``torch.save`` stores every tensor's bytes, uncompressed).

    A few kilobytes may otherwise ask for gigabytes: a zip whose members unpack to more than the file (compressed or
    overlapping members), or a tensor seen through a view larger than its data (a one-element storage expanded to a
    huge shape, which a model built to its shape would then allocate for real).

    Raises:
        ValueError: the file holds more than it has, is a TorchScript program (torch would offer to run it), or holds a
            tensor that is not a dense CPU tensor; torch's own errors for corrupt or unsafe files pass unchanged
            (callers name the file).
    """
    import torch

    size = Path(path).stat().st_size
    with open(path, "rb") as handle:
        zipped = handle.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC
    if zipped:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
        unpacked = sum(member.file_size for member in members)
        if any(member.filename.rpartition("/")[2] == "constants.pkl" for member in members):  # as torch tells them
            raise ValueError("it is a TorchScript program, not a checkpoint: medico never runs one it is given "
                             "(pass the run's checkpoint, or an exported .onnx file)")
        if unpacked > size:
            raise ValueError(f"its members unpack to {unpacked:,} bytes, more than the file's {size:,}")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    held = _tensor_bytes(payload)
    if held > size:
        raise ValueError(f"its tensors span {held:,} bytes, more than the file's {size:,} (views beyond their data)")
    return payload


def _tensor_bytes(payload: Any) -> int:
    """Bytes of the distinct tensors in ``payload`` (dicts, lists and tuples searched), each as large as its shape."""
    import torch

    views: dict[tuple[Any, ...], int] = {}
    pending = [payload]
    while pending:  # a loop, not recursion: nesting as deep as a file likes cannot overflow the stack
        value = pending.pop()
        if isinstance(value, Mapping):
            pending.extend(value.values())
        elif isinstance(value, list | tuple):
            pending.extend(value)
        elif isinstance(value, torch.Tensor):
            if value.layout != torch.strided or value.device.type != "cpu":
                raise ValueError(f"it holds a {value.layout} tensor on {value.device}, expected dense CPU tensors")
            storage = value.untyped_storage().data_ptr()
            key = (storage, value.storage_offset(), tuple(value.shape), value.stride(), value.dtype)
            views[key] = value.numel() * value.element_size()  # tied weights (one view, two names) count once
    return sum(views.values())


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a state_dict safely (:func:`load_weights_only`); a medico checkpoint's ``model`` entry is accepted."""
    import torch

    try:
        payload = load_weights_only(path)
    except Exception as error:  # torch raises several types for corrupt or unsafe files
        raise WeightsError(f"cannot read weights from {path}: {type(error).__name__}: {error}") from error
    if isinstance(payload, Mapping) and isinstance(payload.get("model"), Mapping):
        payload = payload["model"]
    if not isinstance(payload, Mapping) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise WeightsError(f"{path} does not hold a state_dict (a mapping of names to tensors)")
    return dict(payload)


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_matching` did: keys loaded, keys in the file it skipped, model keys left new."""

    loaded: tuple[str, ...]
    skipped: tuple[str, ...]
    new: tuple[str, ...]

    def summary(self) -> str:
        """One line: counts of loaded, skipped and new keys."""
        return f"{len(self.loaded)} tensors loaded, {len(self.skipped)} skipped, {len(self.new)} left new"


def load_matching(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> LoadReport:
    """Copy every tensor whose key and shape match into ``model``; report what was loaded, skipped, new.

    A key in the file that the model lacks, or whose shape differs, is skipped (never silently reshaped).
    """
    own = model.state_dict()
    matching = {k: v for k, v in state_dict.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(matching, strict=False)
    return LoadReport(
        loaded=tuple(sorted(matching)),
        skipped=tuple(sorted(set(state_dict) - set(matching))),
        new=tuple(sorted(set(own) - set(matching))),
    )
