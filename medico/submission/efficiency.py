"""Task 2 (efficiency): write ``TEAM_task2_runN/``, a Docker build context that segments ``/medico2020``.

The context holds a Dockerfile on a public PyTorch runtime image, the model checkpoint (weights only, no
optimizer state), the medico package source (installed with pip inside the image, so the container runs the
same prediction code as ``medico submit``) and ``medico_entry.py``, which writes ``/mask/<stem>.png`` and prints
``NAME - SECONDS`` per image and ``Mean FPS: X`` at the end. The folder appears only when complete.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import medico
from medico import __version__
from medico.download import file_sha256
from medico.engine.tta import check_tta
from medico.errors import MedicoError
from medico.files import check_target
from medico.plugins import BUILT_IN, get_plugin
from medico.runs.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from medico.submission.names import MAX_RUNS, choose_run, run_name, team_dir
from medico.submission.writer import SubmissionFiles, write_manifest

__all__ = ["BASE_IMAGE", "ENTRY_SCRIPT", "dockerfile", "image_tag", "write_task2"]

BASE_IMAGE = "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"
"""A public PyTorch runtime image (CUDA included); medico accepts any torch >= 2.1."""
ENTRY_SCRIPT = Path(__file__).with_name("container_entry.py")
"""The entry script's source, copied into the context as ``medico_entry.py``."""


def image_tag(team: str, run: int) -> str:
    """The Docker image tag of a team's run: the name in Docker's tag alphabet (lower case, ``[a-z0-9_.-]``), then the
    start of the name's SHA-256, since that spelling merges names (``Team A``, ``team-a``, ``TEAM_A``...) and two
    teams' images built under one tag would replace each other."""
    spelled = re.sub(r"[^a-z0-9_.-]+", "-", team.lower()).strip("-_.") or "team"
    return f"{spelled}-{hashlib.sha256(team.encode('utf-8')).hexdigest()[:8]}-task2-run{run}"


def dockerfile(team: str, run: int, weights_sha256: str, tta: str = "none") -> str:
    """The Dockerfile text of the build context (explained in its comments), for a ``team`` that :func:`team_dir` has
    checked, built as :func:`image_tag`; ``tta`` is the container's test-time augmentation
    (:mod:`medico.engine.tta`)."""
    tag = image_tag(team, run)
    return f"""\
# MediaEval 2020 Medico, task 2 (efficiency): team {team}, run {run}, written by medico {__version__}.
# Build:  docker build -t {tag} .
# Run:    docker run --rm --gpus all -v /path/to/images:/medico2020:ro -v /path/to/masks:/mask {tag}
# The container segments every image in /medico2020, writes /mask/<stem>.png (single channel, 0/255, the
# image's own size) and prints "NAME - SECONDS" per image and "Mean FPS: X" at the end.
FROM {BASE_IMAGE}

# The model code: the medico package source, copied into medico-src/ and installed with pip (torch comes from
# the base image; pip fetches the other dependencies listed in medico-src/pyproject.toml while building).
COPY medico-src /opt/medico-src
RUN pip install --no-cache-dir /opt/medico-src

# The weights: a medico checkpoint (model spec, options, input size, state_dict), SHA-256 {weights_sha256}.
COPY weights/model.pt /weights/model.pt
COPY medico_entry.py /app/medico_entry.py

ENV MEDICO_INPUT=/medico2020 MEDICO_OUTPUT=/mask MEDICO_WEIGHTS=/weights/model.pt MEDICO_TTA={check_tta(tta)} \\
    PYTHONUNBUFFERED=1
WORKDIR /app
CMD ["python", "/app/medico_entry.py"]
"""


def _pyproject() -> str:
    """A minimal pyproject.toml for the copied package: name, version and runtime dependencies."""
    try:
        requires = importlib.metadata.requires("medico") or []
    except importlib.metadata.PackageNotFoundError as error:
        raise MedicoError(
            "the medico package is not installed (pip install -e .), so its dependencies are unknown"
        ) from error
    runtime = [r for r in requires if "extra ==" not in r]
    return (
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "medico"\nversion = {json.dumps(__version__)}\nrequires-python = ">=3.10"\n'
        f"dependencies = {json.dumps(runtime)}\n\n"
        '[tool.setuptools.packages.find]\ninclude = ["medico*"]\n'
    )


def _write_context(folder: Path, checkpoint: Checkpoint, team: str, run: int, tta: str) -> str:
    """Fill ``folder`` with the build context; returns the SHA-256 of the copied weights."""
    weights = save_checkpoint(
        folder / "weights" / "model.pt",
        Checkpoint(checkpoint.model_spec, checkpoint.model_options, checkpoint.input_size, checkpoint.model),
    )
    digest = file_sha256(weights)
    source = folder / "medico-src"
    package = Path(medico.__file__).parent
    shutil.copytree(package, source / "medico", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (source / "pyproject.toml").write_text(_pyproject(), encoding="utf-8")
    shutil.copyfile(ENTRY_SCRIPT, folder / "medico_entry.py")
    (folder / "Dockerfile").write_text(dockerfile(team, run, digest, tta), encoding="utf-8")
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
    tta: str = "none",
) -> SubmissionFiles:
    """Write the Docker build context ``root/TEAM/TEAM_task2_runN/`` and ``TEAM_task2_runN.json`` beside it.

    ``model`` is the spec the user trusts to build the checkpoint with (see
    :func:`medico.runs.checkpoint.load_checkpoint`); ``tta`` is the container's test-time augmentation (its
    ``MEDICO_TTA``), recorded in the manifest.

    Raises:
        MedicoError: the checkpoint's model is not a built-in plugin (a file or third-party plugin would be
            missing inside the image), or the run number rules refuse the run.
    """
    folder = team_dir(root, team)
    check_tta(tta)
    number = choose_run(folder, team, "efficiency", run, max_runs, force)
    spec = load_checkpoint(checkpoint, model=model)
    if get_plugin(spec.model_spec).origin != BUILT_IN:
        raise MedicoError(
            f"{checkpoint}: model {spec.model_spec!r} comes from {get_plugin(spec.model_spec).origin}; the task 2 "
            "image installs only the medico package, so only built-in models (see `medico models`) can be packaged"
        )
    base = run_name(team, "efficiency", number)
    destination = folder / base
    check_target(folder / f"{base}.json", replace=force)  # the manifest: refused before the context is written
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{base}.", dir=folder))
    staging.chmod(0o755)  # mkdtemp makes it private; the context is meant to be shared with docker build
    try:
        digest = _write_context(staging, spec, team, number, tta)
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
        checkpoint=checkpoint,
        spec=spec,
        replace=force,
        tta=tta,
        ensemble=1,
        context=destination.name,
        base_image=BASE_IMAGE,
        weights_sha256=digest,
    )
    size = sum(p.stat().st_size for p in files)
    return SubmissionFiles(destination, manifest, team, "efficiency", number, len(files), size, digest)
