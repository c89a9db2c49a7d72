"""The same masks submitted twice: a team's task 1 run whose archive another of its runs already holds.

Each such run would spend one of the team's few runs (five in the challenge) on nothing new. It is found once the
masks are predicted, before the new archive is written, by its SHA-256: archives are deterministic (fixed member
dates), so the same masks give the same bytes. Never before predicting: what a manifest records (checkpoints, test-time
augmentation, precision, images) does not decide the masks alone (a file plugin's code, medico's version and the
CPU's kernels do too), and a wrong "these masks repeat" would have `submit --to` upload the earlier archive.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medico.download import file_sha256
from medico.errors import MedicoError
from medico.leaderboard.columns import model_text
from medico.submission.names import existing_runs, run_name

__all__ = ["RepeatedMasksError", "archive_model", "check_new_archive"]

_MAX_MANIFEST_BYTES = 2**20


class RepeatedMasksError(MedicoError):
    """The masks about to be written are those of an earlier run of the same team and task, in ``archive``."""

    def __init__(self, message: str, archive: Path) -> None:
        super().__init__(message)
        self.archive = archive


def _regular(path: Path) -> bool:
    """Whether ``path`` is a regular file itself, not a link (which could lead anywhere, to a pipe that blocks)."""
    return not path.is_symlink() and path.is_file()


def _manifest(path: Path) -> Any:
    """An earlier run's manifest, or None when it is missing or cannot be read."""
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


def check_new_archive(folder: Path, team: str, run: int, sha256: str) -> None:
    """Refuse, before writing it, run ``run`` of ``team`` whose archive has the SHA-256 ``sha256`` of an earlier one.

    Raises:
        RepeatedMasksError: naming the earlier archive.
    """
    for archive in _earlier_archives(folder, team, run):
        if file_sha256(archive) == sha256:
            raise _refusal(archive, "the same SHA-256")
