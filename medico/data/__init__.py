"""Data: reading Kvasir-SEG-style folders and zips, splits, augmentation, the decoded cache, synthetic polyps."""

from medico.data.dataset import DataError, PolypDataset, Problem
from medico.data.loader import PolypTrainingSet, make_loader
from medico.data.resolve import open_dataset
from medico.data.splits import SPLIT_NAMES, Split, resolve_split

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
