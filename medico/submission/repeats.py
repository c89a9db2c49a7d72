"""The same masks submitted twice: a team's task 1 run whose archive another of its runs already holds.

Each such run would spend one of the team's few runs (five in the challenge) on nothing new. An earlier run is found
before predicting where its manifest proves the masks equal (the same member checkpoints by SHA-256, test-time
augmentation, threshold, precision and test images), and in any case before the new archive is written, by its
SHA-256: archives are deterministic (fixed member dates), so the same masks give the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medico.download import file_sha256
from medico.errors import MedicoError
from medico.leaderboard.columns import model_text
from medico.submission.names import existing_runs, run_name

__all__ = ["RepeatedMasksError", "archive_model", "check_new_archive", "check_new_prediction"]

_PROOF = ("tta", "threshold", "precision", "images_sha256")
"""What, besides the member checkpoints, decides an archive's masks, as its manifest records it."""
_MAX_MANIFEST_BYTES = 2**20


class RepeatedMasksError(MedicoError):
    """The masks about to be written are those of an earlier run of the same team and task, in ``archive``."""

    def __init__(self, message: str, archive: Path) -> None:
        super().__init__(message)
        self.archive = archive


def _prediction(manifest: Any) -> tuple[Any, ...] | None:
    """What decides the masks of the archive ``manifest`` describes; None where it does not record all of it."""
    try:
        members = tuple(member["checkpoint_sha256"] for member in manifest["members"])
        return (members, *(manifest[name] for name in _PROOF))
    except (KeyError, TypeError):
        return None


def _regular(path: Path) -> bool:
    """Whether ``path`` is a regular file itself, not a link (which could lead anywhere, to a pipe that blocks)."""
    return not path.is_symlink() and path.is_file()


def _manifest(path: Path) -> Any:
    """An earlier run's manifest, or None when it is missing or cannot be read (then it proves nothing)."""
    if not _regular(path) or path.stat().st_size > _MAX_MANIFEST_BYTES:
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None


def archive_model(archive: Path) -> str | None:
    """The model of a written archive as the leaderboard names it (``unet (tta flip)``), from the manifest beside it;
    None where that does not say."""
    manifest = _manifest(archive.with_suffix(".json"))
    try:
        return model_text(str(manifest["model"]), str(manifest["tta"]), int(manifest["ensemble"]))
    except (KeyError, TypeError, ValueError):
        return None


def _earlier_archives(folder: Path, team: str, run: int) -> list[Path]:
    """The team's task 1 archives in ``folder`` other than run ``run``'s (the one being written, or replaced)."""
    names = (run_name(team, "segmentation", number) for number in existing_runs(folder, team, "segmentation"))
    archives = [folder / f"{name}.zip" for name in names if name != run_name(team, "segmentation", run)]
    return [archive for archive in archives if _regular(archive)]


def _refusal(archive: Path, proof: str) -> RepeatedMasksError:
    return RepeatedMasksError(
        f"{archive} already holds these masks ({proof}): the same masks again would spend another of the team's "
        "runs; pass --force to write them anyway",
        archive,
    )


def check_new_prediction(folder: Path, team: str, run: int, manifest: Mapping[str, Any]) -> None:
    """Refuse, before predicting, run ``run`` of ``team`` whose manifest fields ``manifest`` (members, tta,
    threshold, precision, images_sha256) equal those of an earlier run whose archive is still the one its manifest
    describes.

    Raises:
        RepeatedMasksError: naming the earlier archive.
    """
    new = _prediction(manifest)
    for archive in _earlier_archives(folder, team, run):
        earlier = _manifest(archive.with_suffix(".json"))
        if new is not None and _prediction(earlier) == new and earlier.get("archive_sha256") == file_sha256(archive):
            raise _refusal(archive, "same checkpoints, tta, threshold, precision and test images, as its manifest says")


def check_new_archive(folder: Path, team: str, run: int, sha256: str) -> None:
    """Refuse, before writing it, run ``run`` of ``team`` whose archive has the SHA-256 ``sha256`` of an earlier one.

    Raises:
        RepeatedMasksError: naming the earlier archive.
    """
    for archive in _earlier_archives(folder, team, run):
        if file_sha256(archive) == sha256:
            raise _refusal(archive, "the same SHA-256")
