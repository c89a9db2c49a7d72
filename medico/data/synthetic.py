"""The built-in synthetic polyp set: endoscopy-like frames with exact masks, generated from a seed.

Each frame has reddish mucosa with vessels, folds, vignetting, the black corners of an endoscope view and
specular highlights; most hold one to three smooth dome-shaped polyps, one frame in ten holds none. Frames
come in a few small non-square sizes so that scoring at the original resolution is exercised. It is small
enough that ``medico run attunet`` learns something real on two CPU cores in a few minutes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

from medico.data.dataset import DataError, PolypDataset
from medico.files import write_atomic

__all__ = [
    "GENERATOR_VERSION",
    "SIZES",
    "SyntheticDataset",
    "synthetic_frame",
    "synthetic_test_images",
    "write_synthetic_kvasir",
]

GENERATOR_VERSION = 1
"""Bumped whenever the generator's output changes, so that caches keyed by content hash are not reused."""
SIZES: tuple[tuple[int, int], ...] = ((160, 192), (176, 224), (160, 160))
"""(height, width) of the frames, in turn: 192x160, 224x176 and 160x160 pixels."""
_EMPTY_EVERY = 10
"""Frame ``i`` has no polyp when ``i % 10 == 7``: one frame in ten, deterministically."""


def _smooth_noise(rng: np.random.Generator, height: int, width: int, scale: float) -> np.ndarray:
    """Noise in about [-1, 1] whose features are ``scale`` pixels wide."""
    coarse = rng.standard_normal((int(height / scale) + 3, int(width / scale) + 3)).astype(np.float32)
    return np.clip(cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC) / 2.0, -1.5, 1.5)


def _polyp(
    rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """A smooth blob: its mask and a dome height in [0, 1] inside it (0 outside)."""
    side = min(height, width)
    cx = width / 2 + rng.uniform(-0.3, 0.3) * width
    cy = height / 2 + rng.uniform(-0.3, 0.3) * height
    radius = rng.uniform(0.09, 0.24) * side
    angle = rng.uniform(0, np.pi)
    stretch = rng.uniform(0.7, 1.0)
    u = (xs - cx) * np.cos(angle) + (ys - cy) * np.sin(angle)
    v = ((ys - cy) * np.cos(angle) - (xs - cx) * np.sin(angle)) / stretch
    rho = np.hypot(u, v)
    theta = np.arctan2(v, u)
    outline = np.ones_like(theta)
    for k in (2, 3, 4):
        outline += rng.uniform(0.0, 0.1 / k * 2) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    relative = rho / (radius * outline)
    mask = relative < 1.0
    dome = np.where(mask, np.sqrt(np.clip(1.0 - relative**2, 0.0, 1.0)), 0.0).astype(np.float32)
    return mask, dome


def synthetic_frame(
    rng: np.random.Generator, height: int, width: int, *, polyps: int
) -> tuple[np.ndarray, np.ndarray]:
    """One frame: RGB uint8 ``(height, width, 3)`` and its exact bool mask (empty when ``polyps`` is 0)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    # Mucosa: reddish, unevenly lit, with thin darker vessels.
    base = np.array([178, 82, 72], np.float32) + rng.uniform(-18, 18, 3).astype(np.float32)
    light = 0.85 + 0.12 * _smooth_noise(rng, height, width, 28) + 0.04 * _smooth_noise(rng, height, width, 5)
    vessels = np.exp(-((_smooth_noise(rng, height, width, 14) / 0.07) ** 2))
    image = base * light[..., None]
    image *= 1.0 - 0.25 * vessels[..., None] * np.array([0.6, 1.0, 0.9], np.float32)
    # Folds: arcs of large circles centred off the frame, dark in the crease and bright on the ridge.
    for _ in range(rng.integers(1, 4)):
        fx, fy = rng.uniform(-1.0, 2.0) * width, rng.uniform(-1.0, 2.0) * height
        distance = np.hypot(xs - fx, ys - fy) - rng.uniform(0.5, 1.2) * max(height, width)
        thickness = rng.uniform(3, 7)
        crease = np.exp(-((distance / thickness) ** 2))
        ridge = np.exp(-(((distance - thickness) / thickness) ** 2))
        shade = 1.0 - 0.3 * crease + 0.1 * ridge
        image *= shade[..., None]
    # Polyps: paler, pinker domes lit from one side, with a shadow just outside their edge.
    mask = np.zeros((height, width), bool)
    lx, ly = rng.uniform(-1, 1, 2)
    for _ in range(polyps):
        blob, dome = _polyp(rng, xs, ys, height, width)
        colour = base * rng.uniform(1.0, 1.15) + np.array([22, 30, 26], np.float32) + rng.uniform(-12, 12, 3)
        gy, gx = np.gradient(dome)
        shading = 0.7 + 0.3 * dome + 2.5 * (lx * gx + ly * gy) + 0.06 * _smooth_noise(rng, height, width, 4)
        near = cv2.dilate(blob.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool) & ~blob
        image[near] *= 0.8
        image[blob] = (colour * shading[..., None])[blob]
        mask |= blob
    # Specular highlights, mostly on polyps.
    for _ in range(rng.integers(3, 10)):
        if mask.any() and rng.random() < 0.6:
            candidates = np.argwhere(mask)
            hy, hx = candidates[rng.integers(len(candidates))]
        else:
            hy, hx = rng.uniform(0, height), rng.uniform(0, width)
        size = rng.uniform(0.8, 2.5)
        spot = np.exp(-(((xs - hx) / size) ** 2 + ((ys - hy) / (size * rng.uniform(0.5, 1.5))) ** 2))
        image = image * (1 - spot[..., None]) + 250.0 * spot[..., None]
    # Vignetting and the endoscope's black corners.
    u, v = (xs - width / 2) / (width / 2), (ys - height / 2) / (height / 2)
    image *= np.clip(1.0 - 0.45 * (u**2 + v**2) / 2, 0.0, 1.0)[..., None]
    image[(u**4 + v**4) > 1.3] = 0.0
    image += rng.normal(0.0, 3.0, image.shape).astype(np.float32)
    image = cv2.GaussianBlur(np.clip(image, 0, 255), (0, 0), 0.6)
    return image.round().astype(np.uint8), mask


def _frame_rng(seed: int, index: int, stream: int) -> np.random.Generator:
    """A generator that depends only on (seed, index, stream): the same frame on every machine."""
    return np.random.default_rng([seed, index, stream, GENERATOR_VERSION])


def _polyp_count(index: int, rng: np.random.Generator) -> int:
    if index % _EMPTY_EVERY == 7:
        return 0
    return int(rng.choice([1, 1, 1, 1, 1, 1, 2, 2, 3]))


def _make(seed: int, index: int, stream: int) -> tuple[np.ndarray, np.ndarray]:
    rng = _frame_rng(seed, index, stream)
    height, width = SIZES[index % len(SIZES)]
    return synthetic_frame(rng, height, width, polyps=_polyp_count(index, rng))


class SyntheticDataset(PolypDataset):
    """``count`` generated frames named ``synthetic-0000``...; frames are made on first use and kept."""

    is_synthetic = True

    def __init__(self, seed: int = 0, count: int = 200) -> None:
        self.seed = seed
        self.names = tuple(f"synthetic-{i:04d}" for i in range(count))
        self.description = f"synthetic polyps (seed {seed}, {count} frames)"
        # Small inputs and a higher learning rate: `medico run attunet` learns in a few minutes on 2 CPU cores.
        self.recommended = {"input_size": 64, "epochs": 8, "batch_size": 8, "lr": 1e-3}
        self._frames: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _index(self, name: str) -> int:
        self.check_name(name)
        return int(name.rpartition("-")[2])

    def _frame(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in self._frames:
            self._frames[name] = _make(self.seed, self._index(name), stream=0)
        return self._frames[name]

    def read_image(self, name: str) -> np.ndarray:
        return self._frame(name)[0].copy()

    def read_mask(self, name: str) -> np.ndarray:
        return self._frame(name)[1].copy()

    def image_size(self, name: str) -> tuple[int, int]:
        return SIZES[self._index(name) % len(SIZES)]

    def content_hash(self, name: str) -> str:
        key = f"medico-synthetic:{GENERATOR_VERSION}:{self.seed}:{self._index(name)}"
        return hashlib.sha256(key.encode()).hexdigest()

    def file_sizes(self, name: str) -> tuple[int, int]:
        return 0, 0


def _write_image(path: Path, pixels: np.ndarray) -> None:
    """Encode by suffix (JPEG at quality 95, PNG, TIFF...) and write atomically."""
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(path.suffix, pixels, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise DataError(f"{path}: cannot encode an image as {path.suffix!r}")
    write_atomic(path, encoded.tobytes(), replace=True)


def synthetic_test_images(folder: Path, *, count: int = 20, seed: int = 1) -> list[Path]:
    """Write ``count`` synthetic frames (JPEG, no masks, several sizes) into ``folder`` for trying ``medico submit``.

    Returns the written paths, sorted.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"synthetic-test-{index:03d}.jpg"
        _write_image(path, _make(seed, index, stream=1)[0])
        paths.append(path)
    return paths


def write_synthetic_kvasir(
    folder: Path, *, count: int = 20, seed: int = 0, mask_suffix: str = ".jpg", val_count: int | None = None
) -> Path:
    """Write frames of the synthetic set in Kvasir-SEG's layout: ``images/``, ``masks/`` and, when ``val_count``
    is given, ``splits/medico2020/{train,val}.txt`` (the last ``val_count`` names validate).

    Useful to try folder and zip handling without real data; masks are 0/255 (JPEG by default, as Kvasir-SEG).
    """
    folder = Path(folder)
    dataset = SyntheticDataset(seed=seed, count=count)
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for name in dataset.names:
        _write_image(folder / "images" / f"{name}.jpg", dataset.read_image(name))
        _write_image(folder / "masks" / f"{name}{mask_suffix}", dataset.read_mask(name).astype(np.uint8) * 255)
    if val_count is not None:
        lists = folder / "splits" / "medico2020"
        lists.mkdir(parents=True, exist_ok=True)
        cut = count - val_count
        write_atomic(lists / "train.txt", "".join(f"{n}\n" for n in dataset.names[:cut]).encode(), replace=True)
        write_atomic(lists / "val.txt", "".join(f"{n}\n" for n in dataset.names[cut:]).encode(), replace=True)
    return folder
