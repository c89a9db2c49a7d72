"""Data: reading Kvasir-SEG-style folders and zips, splits, augmentation, the decoded cache, synthetic polyps.

The training tensors live in :mod:`medico.data.loader` (torch and albumentations), imported from there, so
that reading and checking data does not import torch.
"""

from medico.data.dataset import DataError, PolypDataset, Problem
from medico.data.resolve import open_dataset
from medico.data.splits import SPLIT_NAMES, Split, resolve_split

__all__ = [
    "SPLIT_NAMES",
    "DataError",
    "PolypDataset",
    "Problem",
    "Split",
    "open_dataset",
    "resolve_split",
]
