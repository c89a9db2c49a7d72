"""Data: reading Kvasir-SEG-style folders and zips, splits, augmentation, the decoded cache, synthetic polyps.

The training tensors (:mod:`medico.data.loader`: torch and albumentations) load on first use of their names, so
that reading and checking data does not import torch.
"""

import importlib
from typing import Any

from medico.data.dataset import DataError, PolypDataset, Problem
from medico.data.resolve import open_dataset
from medico.data.splits import SPLIT_NAMES, Split, resolve_split

_LAZY = {"PolypTrainingSet": "medico.data.loader", "make_loader": "medico.data.loader"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SPLIT_NAMES",
    "DataError",
    "PolypDataset",
    "PolypTrainingSet",
    "Problem",
    "Split",
    "make_loader",
    "open_dataset",
    "resolve_split",
]
