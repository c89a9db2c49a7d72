"""A tiny task 1 archive and its ground truth, for tests that score archives (perfect masks, two sizes)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from medico.submission import mask_png

__all__ = ["perfect_archive"]


def perfect_archive(folder: Path, name: str = "T_task1_run1.zip") -> tuple[Path, Path]:
    """``(archive, truth)`` in ``folder``: two ground-truth masks and an archive holding exactly them."""
    truth = folder / "truth"
    truth.mkdir(exist_ok=True)
    for index, (height, width) in enumerate([(12, 16), (10, 8)]):
        mask = np.zeros((height, width), bool)
        mask[2:6, 2:6] = True
        (truth / f"case{index}.png").write_bytes(mask_png(mask))
    archive = folder / name
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(truth.iterdir()):
            handle.writestr(path.name, path.read_bytes())
    return archive, truth
