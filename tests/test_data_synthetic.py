"""The built-in synthetic polyp set and the synthetic test frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medico.data import open_dataset
from medico.data.io import read_rgb
from medico.data.synthetic import SIZES, SyntheticDataset, synthetic_test_images


def test_no_path_means_the_synthetic_set_of_seed_0_deterministic_from_its_seed() -> None:
    dataset = open_dataset(None)  # never another seed: a run's data does not depend on its --seed
    again = SyntheticDataset(seed=0)
    other = SyntheticDataset(seed=5)
    assert dataset.is_synthetic and "synthetic" in dataset.description and "seed 0" in dataset.description
    assert {"input_size", "epochs", "batch_size"} <= set(dataset.recommended)
    name = dataset.names[3]
    assert np.array_equal(dataset.read_image(name), again.read_image(name))
    assert np.array_equal(dataset.read_mask(name), again.read_mask(name))
    assert not np.array_equal(dataset.read_image(name), other.read_image(name))
    assert dataset.fingerprint() == again.fingerprint() != other.fingerprint()


def test_synthetic_frames_come_in_several_non_square_sizes_and_one_in_ten_has_no_polyp() -> None:
    dataset = SyntheticDataset(seed=0, count=40)
    sizes = {dataset.read_image(n).shape[:2] for n in dataset.names}
    assert sizes == set(SIZES) and any(h != w for h, w in sizes)
    for name in dataset.names[:6]:
        assert dataset.read_mask(name).shape == dataset.image_size(name)
    empty = [n for n in dataset.names if not dataset.read_mask(n).any()]
    assert len(empty) == 4
    polyp_fractions = [dataset.read_mask(n).mean() for n in dataset.names if n not in empty]
    assert 0.01 < min(polyp_fractions) and max(polyp_fractions) < 0.6


def test_frames_look_like_endoscopy_red_mucosa_with_dark_corners() -> None:
    image = SyntheticDataset(seed=0).read_image("synthetic-0000")
    centre = image[40:-40, 40:-40].reshape(-1, 3).mean(axis=0)
    assert centre[0] > centre[1] and centre[0] > centre[2]
    assert image[0, 0].max() < 20


def test_synthetic_test_images_are_written_as_jpegs_of_several_sizes(tmp_path: Path) -> None:
    paths = synthetic_test_images(tmp_path / "test", count=6)
    assert [p.name for p in paths] == [f"synthetic-test-{i:03d}.jpg" for i in range(6)]
    assert {read_rgb(p).shape[:2] for p in paths} == set(SIZES)
    assert sorted(p.name for p in (tmp_path / "test").iterdir()) == [p.name for p in paths]
