"""The training tensors: augmentation contract, the inference input convention, the decoded cache, loaders."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from medico.data import open_dataset
from medico.data.augment import augment, training_augmentation
from medico.data.loader import MAX_AUTO_WORKERS, EpochSampler, PolypTrainingSet, default_workers, make_loader
from medico.data.synthetic import SyntheticDataset, write_synthetic_kvasir
from medico.engine.preprocess import normalize, resize_mask, to_tensor


@given(size=st.sampled_from([32, 48, 64]), seed=st.integers(0, 2**32 - 1), data=st.data())
@settings(max_examples=40, deadline=None)
def test_augmentation_keeps_shapes_a_binary_mask_and_the_image_aligned_with_it(size: int, seed: int, data) -> None:
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), bool)
    top, left = data.draw(st.integers(0, size // 2)), data.draw(st.integers(0, size // 2))
    mask[top : top + size // 3, left : left + size // 3] = True
    image = np.repeat(np.where(mask, 220, 30).astype(np.uint8)[..., None], 3, axis=2)
    image = np.clip(image + rng.integers(-5, 6, image.shape), 0, 255).astype(np.uint8)

    out_image, out_mask = augment(training_augmentation(size, seed=seed), image, mask)

    assert out_image.shape == (size, size, 3) and out_image.dtype == np.uint8
    assert out_mask.shape == (size, size) and out_mask.dtype == bool
    assert 0.6 < out_mask.sum() / mask.sum() < 1.5
    # the same geometry moved both: the polyp's pixels stay far brighter than the rest, whatever a sun flare adds
    grey = out_image.mean(axis=2)
    assert grey[out_mask].mean() - grey[~out_mask].mean() > (220 - 30) / 2


@pytest.mark.parametrize("size", [8, 16, 24])
def test_augmentation_works_at_the_smallest_input_sizes(size: int) -> None:
    pipeline = training_augmentation(size)
    for seed in range(20):  # enough draws that each transform, the elastic one included, runs
        pipeline.set_random_seed(seed)
        image, mask = augment(pipeline, np.full((size, size, 3), 90, np.uint8), np.eye(size, dtype=bool))
        assert image.shape == (size, size, 3) and mask.shape == (size, size) and mask.dtype == bool


def test_the_same_seed_gives_the_same_augmentation() -> None:
    dataset = SyntheticDataset(count=8)
    first = PolypTrainingSet(dataset, dataset.names, 48, augment=True, seed=5, cache=False)
    second = PolypTrainingSet(dataset, dataset.names, 48, augment=True, seed=5, cache=False)
    other = PolypTrainingSet(dataset, dataset.names, 48, augment=True, seed=6, cache=False)
    items = [first[i][0] for i in range(8)]
    assert all(torch.equal(a, second[i][0]) for i, a in enumerate(items))
    assert not all(torch.equal(a, other[i][0]) for i, a in enumerate(items))


def test_items_are_the_images_inference_sees_and_binary_masks(workspace: Path) -> None:
    dataset = SyntheticDataset(count=6)
    validation = PolypTrainingSet(dataset, dataset.names, 40, augment=False)
    for index, name in enumerate(dataset.names):
        image, mask = validation[index]
        assert image.shape == (3, 40, 40) and image.dtype == torch.uint8
        assert mask.shape == (1, 40, 40) and set(mask.unique().tolist()) <= {0, 1}
        assert torch.equal(image, to_tensor([dataset.read_image(name)], 40)[0])
        assert torch.equal(mask[0].bool(), torch.from_numpy(resize_mask(dataset.read_mask(name), 40)))


def test_normalised_images_span_minus_one_to_one_and_keep_their_layout() -> None:
    batch = torch.tensor([0, 127, 255], dtype=torch.uint8).repeat(2, 3, 4, 1)
    batch = batch.contiguous(memory_format=torch.channels_last)
    normal = normalize(batch)
    assert normal.dtype == torch.float32 and normal.is_contiguous(memory_format=torch.channels_last)
    assert normal[0, 0, 0].tolist() == pytest.approx([-1.0, 127 / 127.5 - 1, 1.0])


def test_the_decoded_cache_is_filled_once_and_notices_a_changed_image(workspace: Path) -> None:
    folder = write_synthetic_kvasir(workspace / "data", count=4)
    first = PolypTrainingSet(open_dataset(folder), ["synthetic-0000", "synthetic-0001"], 32, augment=False)
    before = first[0][0]
    entries = sorted((workspace / ".cache" / "decoded" / "32").rglob("*.npy"))
    assert len(entries) == 1
    assert torch.equal(PolypTrainingSet(open_dataset(folder), ["synthetic-0000"], 32, augment=False)[0][0], before)

    replacement = np.zeros((160, 192, 3), np.uint8)
    replacement[:, :96] = 200
    Image.fromarray(replacement).save(folder / "images" / "synthetic-0000.jpg")
    after = PolypTrainingSet(open_dataset(folder), ["synthetic-0000"], 32, augment=False)[0][0]
    fresh = PolypTrainingSet(open_dataset(folder), ["synthetic-0000"], 32, augment=False, cache=False)[0][0]
    assert torch.equal(after, fresh) and not torch.equal(after, before)


def test_a_loader_gives_the_same_batches_with_or_without_workers_and_new_ones_each_epoch(workspace: Path) -> None:
    dataset = SyntheticDataset(count=12)

    def two_epochs(workers: int) -> list[list[torch.Tensor]]:
        train = PolypTrainingSet(dataset, dataset.names, 32, augment=True, seed=1)
        loader = make_loader(train, 4, shuffle=True, seed=3, workers=workers)
        batches = []
        for epoch in (1, 2):
            loader.sampler.set_epoch(epoch)
            batches.append([images for images, _ in loader])
        return batches

    plain, parallel = two_epochs(0), two_epochs(2)
    assert [len(epoch) for epoch in plain] == [3, 3]
    for ours, theirs in zip(plain, parallel):
        assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
    assert not all(torch.equal(a, b) for a, b in zip(*plain))


@given(
    size=st.integers(1, 40), world=st.integers(1, 4), seed=st.integers(0, 2**40), epoch=st.integers(1, 100)
)
def test_process_shares_of_an_epoch_are_disjoint_equal_and_cut_from_one_permutation(
    size: int, world: int, seed: int, epoch: int
) -> None:
    def keys(rank: int, processes: int) -> list[tuple[int, int]]:
        sampler = EpochSampler(size, seed=seed, rank=rank, world=processes)
        sampler.set_epoch(epoch)
        return list(sampler)

    whole = [index for index, _ in keys(0, 1)]
    assert sorted(whole) == list(range(size))
    shares = [keys(rank, world) for rank in range(world)]
    assert all(len(share) == size // world for share in shares)
    assert all(key_epoch == epoch for share in shares for _, key_epoch in share)
    for rank, share in enumerate(shares):
        assert [index for index, _ in share] == whole[: size // world * world][rank::world]


def test_only_a_shuffled_loader_drops_the_last_incomplete_batch() -> None:
    dataset = SyntheticDataset(count=10)
    items = PolypTrainingSet(dataset, dataset.names, 16, augment=False, cache=False)
    assert [len(m) for _, m in make_loader(items, 4, shuffle=True)] == [4, 4]
    assert [len(m) for _, m in make_loader(items, 4, shuffle=False)] == [4, 4, 2]
    assert [len(m) for _, m in make_loader(items, 16, shuffle=True)] == [10]


def test_loader_workers_by_default_are_none_on_a_cpu_and_share_the_cores_between_gpu_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert default_workers(torch.device("cpu")) == 0
    assert default_workers(torch.device("cuda")) == MAX_AUTO_WORKERS
    assert default_workers(torch.device("cuda"), processes_here=4) == 3  # 16 cores / 4 processes, one for itself
    assert default_workers(torch.device("cuda"), processes_here=16) == 0
