"""Tensors for training and validation: a torch Dataset over named pairs, and a reproducible DataLoader.

Images are resized with :mod:`medico.preprocess`, exactly as inference does, before the decoded cache and
augmentation. Items stay uint8: the training loop normalises each batch on its device with
:func:`medico.preprocess.normalize`, so workers pass a quarter of the bytes.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from medico.data.augment import augment, training_augmentation
from medico.data.cache import DecodedCache
from medico.data.dataset import DataError, PolypDataset
from medico.preprocess import resize_image, resize_mask

__all__ = ["MAX_AUTO_WORKERS", "PolypTrainingSet", "default_workers", "make_loader"]

MAX_AUTO_WORKERS = 8
"""At most this many loader workers per training process when chosen automatically."""


class PolypTrainingSet(Dataset):
    """Item ``i``: image uint8 ``(3, size, size)`` (RGB) and mask uint8 ``(1, size, size)`` in {0, 1}.

    Args:
        dataset: where the pairs come from.
        names: which pairs, in order (e.g. ``split.train``).
        size: the square input side.
        augment: apply the training augmentation (False for validation).
        seed: seeds the augmentation; DataLoader workers reseed from the loader's generator.
        cache: read decoded, resized pairs from :class:`DecodedCache` (and fill it on first use).
    """

    def __init__(
        self,
        dataset: PolypDataset,
        names: Sequence[str],
        size: int,
        *,
        augment: bool,
        seed: int = 0,
        cache: bool = True,
    ) -> None:
        if size < 8:
            raise DataError(f"input size: expected at least 8 pixels, got {size}")
        for name in names:
            dataset.check_name(name)
        self.dataset = dataset
        self.names = tuple(names)
        self.size = size
        self.cache = DecodedCache() if cache else None
        # Keys are computed here, once, so that DataLoader workers inherit them instead of hashing again.
        self._keys = [DecodedCache.key(dataset.content_hash(n), size) for n in self.names] if cache else []
        self.pipeline = training_augmentation(size, seed=seed) if augment else None

    def __len__(self) -> int:
        return len(self.names)

    def decoded(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The resized pair before augmentation: RGB uint8 ``(size, size, 3)`` and bool ``(size, size)``."""
        if self.cache is not None:
            hit = self.cache.get(self._keys[index], self.size)
            if hit is not None:
                return hit
        name = self.names[index]
        image = resize_image(self.dataset.read_image(name), self.size)
        mask = resize_mask(self.dataset.read_mask(name), self.size)
        if self.cache is not None:
            self.cache.put(self._keys[index], self.size, image, mask)
        return image, mask

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.decoded(index)
        if self.pipeline is not None:
            image, mask = augment(self.pipeline, image, mask)
        return torch.from_numpy(image).permute(2, 0, 1), torch.from_numpy(mask[None].astype(np.uint8))

    def reseed(self, seed: int) -> None:
        """Restart the augmentation's random stream from ``seed`` (called in each DataLoader worker)."""
        if self.pipeline is not None:
            self.pipeline.set_random_seed(seed % 2**32)


def _seed_worker(worker_id: int) -> None:
    """Seed a worker from the loader's generator: NumPy, ``random`` and the dataset's augmentation."""
    info = get_worker_info()
    seed = info.seed % 2**32  # base seed drawn from the loader's seeded generator, plus worker_id
    np.random.seed(seed)
    random.seed(seed)
    reseed = getattr(info.dataset, "reseed", None)
    if reseed is not None:
        reseed(seed)


def default_workers(device: torch.device, processes_here: int = 1) -> int:
    """Loader workers when none are asked for: none on a CPU, up to 8 per training process on a GPU.

    On a CPU the model's threads already use every core: a worker would only take cores from them (an item
    costs about 3 ms at 256x256, 1 % of a training step at batch 16 on 2 cores). A GPU trains hundreds of images
    per second, more than one core augments (about 350 per second), so each GPU process gets the cores it can
    share with the other ``processes_here`` processes on this machine, less one for itself.
    """
    if device.type == "cpu":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(0, min(MAX_AUTO_WORKERS, cores // max(processes_here, 1) - 1))


def make_loader(
    dataset: Dataset, batch_size: int, *, shuffle: bool, seed: int = 0, workers: int = 0
) -> DataLoader:
    """A DataLoader whose order and augmentation depend only on ``seed`` (and the number of workers).

    Pinned memory when CUDA is available, persistent workers when ``workers > 0``. The last incomplete batch
    is dropped only when shuffling (and only when there is more than one batch), so that training never sees
    a batch of one (BatchNorm) and validation sees every image.
    """
    if batch_size < 1:
        raise DataError(f"batch size: expected at least 1, got {batch_size}")
    if workers < 0:
        raise DataError(f"workers: expected 0 or more, got {workers}")
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=shuffle and len(dataset) > batch_size,
        num_workers=workers,
        generator=generator,
        worker_init_fn=_seed_worker,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,
    )
