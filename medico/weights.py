"""Pretrained weights: where they come from, the download cache, and a loader that reports what it did."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from medico.download import DownloadError, Progress, download, file_sha256, sha256_matches
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
        if (self.url is None) == (self.path is None):
            raise ValueError("WeightsSource: give exactly one of url= or path=")

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


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a state_dict safely (``weights_only=True``); a medico checkpoint's ``model`` entry is accepted."""
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
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
