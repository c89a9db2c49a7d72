"""Task 1 (segmentation): predict every test image and write ``TEAM_task1_runN.zip`` plus its manifest.

The archive holds one single-channel PNG per image, named ``<stem>.png``, values 0/255, at the image's exact
width x height. Members carry a fixed date so that the same masks give the same archive (and SHA-256), and masks an
earlier run of the team already holds are refused (:mod:`medico.submission.repeats`). The manifest (model,
checkpoint hash, the training run and its data, input size, threshold, date, medico version) sits beside the zip,
not in it.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from medico import __version__
from medico.data.io import read_rgb
from medico.download import file_sha256, named_files_sha256
from medico.engine.evaluation import load_ensemble, prediction_record
from medico.engine.runtime import MASK_PRECISION
from medico.errors import MedicoError
from medico.files import check_target, write_atomic
from medico.leaderboard.columns import model_text
from medico.plugins import get_plugin
from medico.runs.checkpoint import Checkpoint
from medico.runs.dataset import recorded_data
from medico.runs.folder import RunFolder
from medico.submission.names import MAX_RUNS, Task, choose_run, run_name, team_dir
from medico.submission.repeats import check_new_archive

__all__ = ["Source", "SubmissionFiles", "mask_archive", "mask_png", "write_manifest", "write_task1"]

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def _near(path: Path) -> Path:
    """``path`` relative to the current folder when it lies inside it (``runs/9-unet``), else as it is."""
    try:
        return path.relative_to(Path.cwd().resolve())
    except ValueError:
        return path


@dataclass(frozen=True)
class Source:
    """A checkpoint a submission was made from: its file and model spec, the training run folder holding it (None: a
    file kept outside any run) and the data that run was trained on, and whether that was synthetic (None: not
    recorded)."""

    checkpoint: Path
    model: str
    training_run: Path | None
    trained_on: str | None
    synthetic: bool | None

    @classmethod
    def of(cls, checkpoint: Path, spec: Checkpoint) -> Source:
        """The source of ``spec``, loaded from ``checkpoint``: its run and data as the run's record says.

        Raises:
            OtherDataError: the run's or checkpoint's data record cannot be read.
        """
        run = RunFolder.containing(checkpoint)
        record = recorded_data(spec, run, f"checkpoint {checkpoint}")
        return cls(
            Path(checkpoint),
            spec.model_spec,
            None if run is None else _near(run.path),
            None if record is None else record.description,
            None if record is None else record.synthetic,
        )

    def record(self) -> dict[str, Any]:
        """What a manifest says of it beside the checkpoint and model: the training run and its data."""
        return {
            "training_run": None if self.training_run is None else str(self.training_run),
            "trained_on": self.trained_on,
        }


@dataclass(frozen=True)
class SubmissionFiles:
    """What ``medico submit`` wrote: the archive (task 1) or Docker context (task 2), its manifest, the number
    of masks (task 1) or files (task 2), their size in bytes, and the SHA-256 of the archive (task 1) or weights;
    the model as the leaderboard names it (test-time augmentation and ensemble size included) and the checkpoints it
    came from."""

    path: Path
    manifest: Path
    team: str
    task: Task
    run: int
    count: int
    size: int
    sha256: str
    model: str
    sources: tuple[Source, ...]


def mask_png(mask: np.ndarray) -> bytes:
    """A boolean ``(H, W)`` mask as PNG bytes: single channel ('L'), values 0 and 255, same height and width."""
    buffer = io.BytesIO()
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L").save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def mask_archive(masks: Iterable[tuple[str, np.ndarray]]) -> tuple[bytes, int]:
    """``(stem, mask)`` pairs as the bytes of a zip of ``<stem>.png`` members, and the mask count.

    The zip is assembled in memory (binary PNG masks are a few kB each), so it can be checked before it is written
    in one go; its members' fixed date makes the same masks the same bytes.
    """
    count = 0
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for stem, mask in masks:
            info = zipfile.ZipInfo(f"{stem}.png", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o100644 << 16  # a regular file, rw-r--r--
            archive.writestr(info, mask_png(mask))
            count += 1
    return buffer.getvalue(), count


def write_manifest(
    path: Path,
    *,
    team: str,
    task: Task,
    run: int,
    source: Source,
    spec: Checkpoint,
    replace: bool = False,
    **fields: Any,
) -> Path:
    """The manifest beside a submission, as indented JSON (written atomically; an existing file replaced only with
    ``replace``).

    Every manifest names the team, task and run, the model and the checkpoint it came from (with its SHA-256, the
    training run holding it and the data that run was trained on), the date and medico's version; ``fields`` add what
    is particular to the task.
    """
    manifest = {
        "team": team,
        "task": task,
        "run": run,
        **fields,
        "model": spec.model_spec,
        "model_options": spec.model_options,
        "plugin": get_plugin(spec.model_spec).provenance(),
        "checkpoint": str(source.checkpoint),
        "checkpoint_sha256": file_sha256(source.checkpoint),
        **source.record(),
        "input_size": spec.input_size,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "medico_version": __version__,
    }
    return write_atomic(path, json.dumps(manifest, indent=2) + "\n", replace=replace)


def _check_stems(images: Sequence[Path]) -> None:
    if not images:
        raise MedicoError("--images: expected a folder with test images, found none")
    seen: dict[str, Path] = {}
    for path in images:
        if path.stem in seen:
            raise MedicoError(
                f"--images: {seen[path.stem].name} and {path.name} share the stem {path.stem!r}; "
                "each mask is named by its image's stem, so stems must be unique"
            )
        seen[path.stem] = path


def write_task1(
    checkpoint: Path | Sequence[Path],
    images: Sequence[Path],
    root: Path,
    team: str,
    *,
    run: int | None = None,
    max_runs: int = MAX_RUNS,
    force: bool = False,
    device: torch.device | str = "cpu",
    precision: str = MASK_PRECISION,
    batch_size: int = 4,
    progress: Callable[[Path], None] | None = None,
    model: str | None = None,
    tta: str = "none",
) -> SubmissionFiles:
    """Predict ``images`` with ``checkpoint`` and write ``root/TEAM/TEAM_task1_runN.zip`` and its ``.json``.

    Args:
        checkpoint: a medico checkpoint file, or several: the mean of their probabilities (an ensemble, whose
            members the manifest lists; its ``model`` and ``checkpoint`` are the first member's).
        images: the test images; their stems name the masks and must be unique.
        root: the submissions folder.
        team: the team name (checked: a name, never a path).
        run, max_runs: the run number rules of :func:`medico.submission.names.choose_run`.
        force: overwrite run ``run`` when it exists, and write masks an earlier run of the team already holds
            (refused otherwise, once predicted, before anything is written).
        device, precision: where and how the model runs.
        batch_size: images per forward pass.
        progress: called with each image's path once its mask is predicted.
        model: the model spec the user trusts to build the checkpoint with (``--model``; see
            :func:`medico.runs.checkpoint.load_checkpoint`).
        tta: test-time augmentation (:mod:`medico.engine.tta`), recorded in the manifest.

    Raises:
        RepeatedMasksError: without ``force``, the masks are those of an earlier run's archive (nothing written).
    """
    paths = [Path(checkpoint)] if isinstance(checkpoint, str | Path) else [Path(p) for p in checkpoint]
    folder = team_dir(root, team)
    _check_stems(images)
    number = choose_run(folder, team, "segmentation", run, max_runs, force)
    base = run_name(team, "segmentation", number)
    archive, manifest_path = folder / f"{base}.zip", folder / f"{base}.json"
    for target in (archive, manifest_path):
        check_target(target, replace=force)  # refused now, not after predicting every image
    predictor, specs = load_ensemble(paths, model=model, device=str(device), precision=precision, tta=tta)
    sources = tuple(Source.of(path, spec) for path, spec in zip(paths, specs))
    prediction = prediction_record(predictor, paths, specs)
    for member, source in zip(prediction["members"], sources):
        member.update(checkpoint_sha256=file_sha256(source.checkpoint), **source.record())
    settings = {
        **prediction,
        "threshold": predictor.threshold,
        "images_sha256": named_files_sha256({path.name: path for path in images}),
    }

    def named_masks() -> Iterable[tuple[str, np.ndarray]]:
        for path, mask in zip(images, predictor.predict_all((read_rgb(p) for p in images), batch_size)):
            yield path.stem, mask
            if progress is not None:
                progress(path)

    data, count = mask_archive(named_masks())
    digest = hashlib.sha256(data).hexdigest()
    if not force:
        check_new_archive(folder, team, number, digest)
    write_atomic(archive, data, replace=force)
    try:
        manifest = write_manifest(
            manifest_path,
            team=team,
            task="segmentation",
            run=number,
            source=sources[0],
            spec=specs[0],
            replace=force,
            **settings,
            archive=archive.name,
            archive_sha256=digest,
            archive_bytes=len(data),
            images=count,
            device=str(predictor.device),
            mask_format="PNG, single channel, values 0/255, each image's own width x height",
        )
    except BaseException:  # a run is an archive and its manifest: never an archive alone (a full disk, Ctrl-C)
        archive.unlink(missing_ok=True)
        raise
    return SubmissionFiles(
        archive, manifest, team, "segmentation", number, count, len(data), digest,
        model=model_text(specs[0].model_spec, predictor.tta, len(specs)), sources=sources,
    )
