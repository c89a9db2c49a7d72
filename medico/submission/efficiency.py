"""Task 2 (efficiency): write ``TEAM_task2_runN/``, a Docker build context that segments ``/medico2020``.

The context holds a Dockerfile on a public PyTorch runtime image, the model checkpoint (weights only, no
optimizer state), the medico package source (installed with pip inside the image, so the container runs the
same prediction code as ``medico submit``) and ``medico_entry.py``, which writes ``/mask/<stem>.png`` and prints
``NAME - SECONDS`` per image and ``Mean FPS: X`` at the end. The folder appears only when complete.

A plugin's model (a file, module or third-party plugin) would need its code inside the image; instead it is
exported to ONNX (:func:`medico.engine.export.export_checkpoint`, checked against the eager model on real frames)
as ``weights/model.onnx``, and the image installs medico with ONNX Runtime (the ``onnx`` extra) to run it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import medico
from medico import __version__
from medico.download import file_sha256
from medico.engine.export import export_checkpoint, real_frames
from medico.engine.graphs import EXTRA, require
from medico.engine.tta import check_tta
from medico.errors import MedicoError
from medico.files import check_target
from medico.leaderboard.columns import model_text
from medico.plugins import BUILT_IN, get_plugin
from medico.runs.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from medico.submission.names import MAX_RUNS, choose_run, run_name, team_dir
from medico.submission.writer import Source, SubmissionFiles, write_manifest

__all__ = ["BASE_IMAGE", "ENTRY_SCRIPT", "docker_commands", "dockerfile", "image_tag", "write_task2"]

BASE_IMAGE = "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"
"""A public PyTorch runtime image (CUDA included); medico accepts any torch >= 2.1."""
ENTRY_SCRIPT = Path(__file__).with_name("container_entry.py")
"""The entry script's source, copied into the context as ``medico_entry.py``."""
CHECKPOINT = "model.pt"
EXPORTED = "model.onnx"
"""The weights' file name in the context's ``weights/``: a built-in model's checkpoint, or a plugin's ONNX export."""


@dataclass(frozen=True)
class _Export:
    """A plugin's checkpoint sent as ONNX: its file, the model spec trusted to build it, the frames to check it on."""

    source: Path
    model: str | None
    images: Sequence[np.ndarray]


def image_tag(team: str, run: int) -> str:
    """The Docker image tag of a team's run: the name in Docker's tag alphabet (lower case, ``[a-z0-9_.-]``), then the
    start of the name's SHA-256, since that spelling merges names (``Team A``, ``team-a``, ``TEAM_A``...) and two
    teams' images built under one tag would replace each other."""
    spelled = re.sub(r"[^a-z0-9_.-]+", "-", team.lower()).strip("-_.") or "team"
    return f"{spelled}-{hashlib.sha256(team.encode('utf-8')).hexdigest()[:8]}-task2-run{run}"


def docker_commands(team: str, run: int, context: Path | str = ".") -> tuple[str, str]:
    """The ``docker build`` line of a team's run (its build ``context``, the folder holding the Dockerfile) and the
    ``docker run`` line segmenting a folder of images into a folder of masks, mounted at ``/medico2020`` (read only)
    and ``/mask``, for a ``team`` that :func:`team_dir` has checked; both tag the image :func:`image_tag`."""
    tag = image_tag(team, run)
    return (
        f"docker build -t {tag} {shlex.quote(str(context))}",
        f"docker run --rm --gpus all -v /path/to/images:/medico2020:ro -v /path/to/masks:/mask {tag}",
    )


def dockerfile(team: str, run: int, weights_sha256: str, weights: str = CHECKPOINT, tta: str = "none") -> str:
    """The Dockerfile text of the build context (explained in its comments), for a ``team`` that :func:`team_dir` has
    checked, built as :func:`image_tag`; ``weights`` is the checkpoint or, for a plugin's model, :data:`EXPORTED`;
    ``tta`` is the container's test-time augmentation (:mod:`medico.engine.tta`)."""
    build, run_line = docker_commands(team, run)
    if weights == EXPORTED:
        what = "the model exported to ONNX (it needs no plugin code; ONNX Runtime runs it on the CPU)"
    else:
        what = "a medico checkpoint (model spec, options, input size, state_dict)"
    return f"""\
# MediaEval 2020 Medico, task 2 (efficiency): team {team}, run {run}, written by medico {__version__}.
# Build:  {build}
# Run:    {run_line}
# The container segments every image in /medico2020, writes /mask/<stem>.png (single channel, 0/255, the
# image's own size) and prints "NAME - SECONDS" per image and "Mean FPS: X" at the end.
FROM {BASE_IMAGE}

# The model code: the medico package source, copied into medico-src/ and installed with pip (torch comes from
# the base image; pip fetches the other dependencies listed in medico-src/pyproject.toml while building).
COPY medico-src /opt/medico-src
RUN pip install --no-cache-dir /opt/medico-src

# The weights: {what}, SHA-256 {weights_sha256}.
COPY weights/{weights} /weights/{weights}
COPY medico_entry.py /app/medico_entry.py

ENV MEDICO_INPUT=/medico2020 MEDICO_OUTPUT=/mask MEDICO_WEIGHTS=/weights/{weights} MEDICO_TTA={check_tta(tta)} \\
    PYTHONUNBUFFERED=1
WORKDIR /app
CMD ["python", "/app/medico_entry.py"]
"""


def _pyproject(extras: tuple[str, ...] = ()) -> str:
    """A minimal pyproject.toml for the copied package: name, version and runtime dependencies, with those of
    ``extras`` (the image installs no extra by name)."""
    try:
        requires = importlib.metadata.requires("medico") or []
    except importlib.metadata.PackageNotFoundError as error:
        raise MedicoError(
            "the medico package is not installed (pip install -e .), so its dependencies are unknown"
        ) from error
    wanted = {f'extra == "{extra}"' for extra in extras}
    runtime = [r.split(";")[0].strip() for r in requires if "extra ==" not in r or r.split(";")[1].strip() in wanted]
    return (
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "medico"\nversion = {json.dumps(__version__)}\nrequires-python = ">=3.10"\n'
        f"dependencies = {json.dumps(runtime)}\n\n"
        '[tool.setuptools.packages.find]\ninclude = ["medico*"]\n'
    )


def _write_context(
    folder: Path, checkpoint: Checkpoint, team: str, run: int, export: _Export | None, tta: str
) -> str:
    """Fill ``folder`` with the build context; returns the SHA-256 of the copied weights. With ``export`` (a plugin's
    checkpoint file, the spec trusted to build it and the frames to check it on) the model goes as ONNX."""
    (folder / "weights").mkdir()
    if export is None:
        weights = save_checkpoint(
            folder / "weights" / CHECKPOINT,
            Checkpoint(checkpoint.model_spec, checkpoint.model_options, checkpoint.input_size, checkpoint.model),
        )
    else:
        target = folder / "weights" / EXPORTED
        weights = export_checkpoint(export.source, target, "onnx", export.images, model=export.model).path
    digest = file_sha256(weights)
    source_dir = folder / "medico-src"
    package = Path(medico.__file__).parent
    shutil.copytree(package, source_dir / "medico", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    extras = (EXTRA,) if export is not None else ()
    (source_dir / "pyproject.toml").write_text(_pyproject(extras), encoding="utf-8")
    shutil.copyfile(ENTRY_SCRIPT, folder / "medico_entry.py")
    (folder / "Dockerfile").write_text(dockerfile(team, run, digest, weights.name, tta), encoding="utf-8")
    return digest


def write_task2(
    checkpoint: Path,
    root: Path,
    team: str,
    *,
    run: int | None = None,
    max_runs: int = MAX_RUNS,
    force: bool = False,
    model: str | None = None,
    images: Path | None = None,
    tta: str = "none",
) -> SubmissionFiles:
    """Write the Docker build context ``root/TEAM/TEAM_task2_runN/`` and ``TEAM_task2_runN.json`` beside it.

    ``model`` is the spec the user trusts to build the checkpoint with (see
    :func:`medico.runs.checkpoint.load_checkpoint`). A model that is not built in is exported to ONNX, checked on
    the first frames of ``images`` (default: its run's validation images, see
    :func:`medico.engine.export.real_frames`). ``tta`` is the container's test-time augmentation (its
    ``MEDICO_TTA``), recorded in the manifest.

    Raises:
        MedicoError: the run number rules refuse the run, or a plugin's model cannot be exported (ONNX missing,
            no frames to check it on, masks that disagree with the eager model's).
    """
    folder = team_dir(root, team)
    check_tta(tta)
    number = choose_run(folder, team, "efficiency", run, max_runs, force)
    spec = load_checkpoint(checkpoint, model=model)
    source = Source.of(checkpoint, spec)
    export: _Export | None = None
    if get_plugin(spec.model_spec).origin != BUILT_IN:  # its code is not in the image: its graph goes instead
        require("onnxruntime", f"packaging {spec.model_spec!r} (not built in) for task 2 as ONNX")
        export = _Export(checkpoint, model, real_frames(images, spec, checkpoint)[0])
    base = run_name(team, "efficiency", number)
    destination = folder / base
    check_target(folder / f"{base}.json", replace=force)  # the manifest: refused before the context is written
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{base}.", dir=folder))
    staging.chmod(0o755)  # mkdtemp makes it private; the context is meant to be shared with docker build
    try:
        digest = _write_context(staging, spec, team, number, export, tta)
        if destination.exists():  # only reached with --force (choose_run refuses otherwise)
            shutil.rmtree(destination)
        os.replace(staging, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    files = [p for p in destination.rglob("*") if p.is_file()]
    manifest = write_manifest(
        folder / f"{base}.json",
        team=team,
        task="efficiency",
        run=number,
        source=source,
        spec=spec,
        replace=force,
        tta=tta,
        ensemble=1,
        context=destination.name,
        base_image=BASE_IMAGE,
        weights_sha256=digest,
        weights="onnx (exported: the model's code is not in the image)" if export is not None else "checkpoint",
    )
    size = sum(p.stat().st_size for p in files)
    return SubmissionFiles(
        destination, manifest, team, "efficiency", number, len(files), size, digest,
        model=model_text(spec.model_spec, tta), sources=(source,),
    )
