"""Tensors for training and validation: a torch Dataset over named pairs, and a reproducible DataLoader.

Images are resized with :mod:`medico.engine.preprocess`, exactly as inference does, before the decoded cache and
augmentation. Items stay uint8: the training loop normalises each batch on its device with
:func:`medico.engine.preprocess.normalize`, so workers pass a quarter of the bytes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from medico.data.augment import augment, training_augmentation
from medico.data.cache import DecodedCache
from medico.data.dataset import DataError, PolypDataset
from medico.engine.preprocess import resize_image, resize_mask

__all__ = ["MAX_AUTO_WORKERS", "EpochSampler", "PolypTrainingSet", "default_workers", "item_seed", "make_loader"]

MAX_AUTO_WORKERS = 8
"""At most this many loader workers per training process when chosen automatically."""


class PolypTrainingSet(Dataset):
    """Item ``i``: image uint8 ``(3, size, size)`` (RGB) and mask uint8 ``(1, size, size)`` in {0, 1}.

    An item is a pure function of its key: ``i`` or ``(i, epoch)`` (what :class:`EpochSampler` yields). Its
    augmentation is seeded by ``(seed, epoch, i)``, so it never depends on how many loader workers or
    processes fetch it, and a resumed run sees what an uninterrupted one saw.

    Args:
        dataset: where the pairs come from.
        names: which pairs, in order (e.g. ``split.train``).
        size: the square input side.
        augment: apply the training augmentation (False for validation).
        seed: seeds the augmentation, with the epoch and the item's index.
        cache: read decoded, resized pairs from :class:`DecodedCache` (and fill it on first use, or before it with
            :meth:`fill_cache`).
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
        self.seed = seed
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

    def uncached(self) -> list[int]:
        """The indices of the pairs the decoded cache holds no entry for yet (none without a cache)."""
        if self.cache is None:
            return []
        return [i for i, key in enumerate(self._keys) if not self.cache.path(key, self.size).is_file()]

    def fill_cache(
        self, indices: Sequence[int], *, workers: int = 0, progress: Callable[[int, int], None] | None = None
    ) -> None:
        """Decode the pairs at ``indices`` into the cache, in ``workers`` loader processes (none: in this one), telling
        ``progress(done, total)`` before the first and after each; filling them before training makes a first
        epoch's steps take as long as every later epoch's."""
        if not indices:
            return
        if progress is not None:
            progress(0, len(indices))
        decoding = DataLoader(_Decoding(self, indices), batch_size=None, num_workers=min(workers, len(indices)))
        for done, _ in enumerate(decoding, start=1):
            if progress is not None:
                progress(done, len(indices))

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        image, mask = self.decoded(index)
        if self.pipeline is not None:
            self.pipeline.set_random_seed(item_seed(self.seed, epoch, index))
            image, mask = augment(self.pipeline, image, mask)
        return torch.from_numpy(image).permute(2, 0, 1), torch.from_numpy(mask[None].astype(np.uint8))


class _Decoding(Dataset):
    """Item ``i`` decodes the pair at ``indices[i]`` of ``train_set`` into its cache, and is that pair's index."""

    def __init__(self, train_set: PolypTrainingSet, indices: Sequence[int]) -> None:
        self.train_set, self.indices = train_set, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> int:
        self.train_set.decoded(self.indices[position])
        return self.indices[position]


def item_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of item ``index`` in ``epoch`` of a run seeded with ``seed`` (32 bits)."""
    return int(np.random.SeedSequence([seed % 2**64, epoch, index]).generate_state(1)[0])


def _order_seed(seed: int, epoch: int) -> int:
    """The seed of ``epoch``'s permutation (a different stream from every item's augmentation)."""
    return int(np.random.SeedSequence([seed % 2**64, epoch]).generate_state(1)[0])


class EpochSampler(Sampler[tuple[int, int]]):
    """Yields ``(index, epoch)`` keys: a permutation seeded by ``(seed, epoch)``, or this process's share of it.

    With several processes every one draws the same permutation and takes every ``world``-th item of it, after
    dropping the tail that does not split evenly: no image twice in an epoch, as many steps on every process.
    Call :meth:`set_epoch` before each epoch; a loader with persistent workers then keeps them between epochs.
    """

    def __init__(self, size: int, *, seed: int, shuffle: bool = True, rank: int = 0, world: int = 1) -> None:
        self.size, self.seed, self.shuffle, self.rank, self.world = size, seed, shuffle, rank, world
        self.epoch = 1

    def set_epoch(self, epoch: int) -> None:
        """Draw the next iteration's order for ``epoch`` (the training loop counts from 1)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size // self.world

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(_order_seed(self.seed, self.epoch))
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        share = order[: len(self) * self.world][self.rank :: self.world]
        return iter([(index, self.epoch) for index in share])


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
    dataset: PolypTrainingSet,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    workers: int = 0,
    rank: int = 0,
    world: int = 1,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader over an :class:`EpochSampler`: order and augmentation depend only on ``seed`` and the epoch.

    Not on the number of workers: each item's augmentation is seeded by its own key. Workers persist between
    epochs (``loader.sampler.set_epoch`` moves on); ``pin_memory`` for batches bound for a GPU. The last
    incomplete batch is dropped only when shuffling (and only when there is more than one batch), so that
    training never sees a batch of one (BatchNorm) and validation sees every image.
    """
    if batch_size < 1:
        raise DataError(f"batch size: expected at least 1, got {batch_size}")
    if workers < 0:
        raise DataError(f"workers: expected 0 or more, got {workers}")
    sampler = EpochSampler(len(dataset), seed=seed, shuffle=shuffle, rank=rank, world=world)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=shuffle and len(sampler) > batch_size,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
    )

