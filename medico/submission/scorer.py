"""Organiser scoring of a task 1 archive: validate, score every mask against the ground truth, record it.

The masks are scored by :mod:`medico.metrics` through :class:`medico.engine.result.EvaluationResult`, the same
code and policy as ``medico evaluate``, without torch. Results go next to the archive (``<stem>_scores.csv``,
``<stem>_summary.json``) and onto the leaderboard as a ``test`` entry identified by the archive's SHA-256, so
scoring the same archive twice adds nothing.

The result files and the entry are written together or not at all: both files are written to temporaries while
the entry's transaction is open; a failure there rolls the entry back, a failed commit (locked, corrupt, full or
read-only database) deletes them, and only after the commit are they renamed into place. A rename is the one step
left after the commit, and it needs no space, so no failure leaves files describing an entry that does not exist.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from medico import __version__
from medico.data.io import ImageReadError, list_images
from medico.data.masks import read_mask
from medico.download import file_sha256, named_files_sha256
from medico.engine.result import EvaluationResult
from medico.engine.tta import TTA_MODES
from medico.errors import MedicoError, some
from medico.files import atomic_path
from medico.leaderboard import Entry, LeaderboardStore
from medico.leaderboard.participant import check_run_number, check_team_name
from medico.metrics import METRIC_POLICY, confusion_counts
from medico.polyp_metrics import MASK_INPUT, PAPER_POLICY, paper_scores
from medico.submission.names import run_in_name
from medico.submission.validator import InvalidSubmissionError, ValidationReport, image_sizes, validate_archive

__all__ = ["ScoreResult", "Truth", "score_archive", "score_masks"]

_MAX_MANIFEST_BYTES = 2**20
_MAX_ENSEMBLE = 10_000
"""The most models a manifest may say it averaged; a larger count is not taken from it."""
_NO_LINKS = getattr(os, "O_NOFOLLOW", 0)


@dataclass(frozen=True)
class ScoreResult:
    """A scored archive: where its results went, its mean scores, and the leaderboard entry id.

    ``entry_id`` is None when the leaderboard already had this archive (same SHA-256, task and split).
    """

    archive: Path
    sha256: str
    team: str
    run: int | None
    model: str
    evaluation: EvaluationResult
    scores_csv: Path
    summary_json: Path
    entry_id: int | None
    report: ValidationReport


def _manifest_fields(archive: Path) -> dict[str, Any]:
    """What the participant's manifest beside the archive says of the entry: the model ("submission" without a
    readable one), the test-time augmentation and the ensemble size (none and 1 unless it states valid ones).

    The manifest is participant text: only a regular file is read, never a link (which could lead to any of the
    organiser's files) nor a pipe or device (which could block), at most :data:`_MAX_MANIFEST_BYTES` of it, and only
    its ``model`` string (as it is: the leaderboard entry neutralises what it shows), a ``tta`` among
    :data:`~medico.engine.tta.TTA_MODES` and a positive ``ensemble`` count are kept.
    """
    fields: dict[str, Any] = {"model": "submission", "tta": "none", "ensemble": 1}
    try:
        fd = os.open(archive.with_suffix(".json"), os.O_RDONLY | _NO_LINKS | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return fields
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return fields
        data = handle.read(_MAX_MANIFEST_BYTES + 1)
    if len(data) > _MAX_MANIFEST_BYTES:
        return fields
    try:
        manifest = json.loads(data.decode("utf-8-sig"))
        model, tta, ensemble = (manifest.get(key) for key in ("model", "tta", "ensemble"))
    except (ValueError, AttributeError, RecursionError):  # not UTF-8, not JSON, not an object, nested too deep
        return fields
    if isinstance(model, str) and model:
        fields["model"] = model
    if isinstance(tta, str) and tta in TTA_MODES:
        fields["tta"] = tta
    if isinstance(ensemble, int) and not isinstance(ensemble, bool) and 1 <= ensemble <= _MAX_ENSEMBLE:
        fields["ensemble"] = ensemble
    return fields


@dataclass(frozen=True)
class Truth:
    """The ground truth an archive is scored against: each scored image's mask and ``(width, height)``, and the
    fingerprint of exactly those masks (names and contents)."""

    paths: dict[str, Path]
    sizes: dict[str, tuple[int, int]]
    fingerprint: str

    @classmethod
    def read(cls, folder: Path, names: Sequence[str] | None = None) -> Truth:
        """The masks in ``folder``: all of them, or only ``names`` when it holds more (Kvasir-SEG's 1000 masks for its
        120 validation images), so that entries scored against other truth are never ranked together.

        Raises:
            MedicoError: no name is given, or a name has no mask in ``folder``.
        """
        if names is not None and not names:
            raise MedicoError(f"--truth {folder}: no images to score: the list of names to score is empty")
        sizes = image_sizes(folder)
        if names is not None:
            missing = sorted(set(names) - set(sizes))
            if missing:
                raise MedicoError(
                    f"--truth {folder}: no mask for {len(missing)} of the {len(set(names))} images to score "
                    f"({some(missing)})"
                )
            sizes = {name: sizes[name] for name in sorted(set(names))}
        paths = {p.stem: p for p in list_images(folder) if p.stem in sizes}
        return cls(paths, sizes, named_files_sha256(paths))

    def mask(self, name: str) -> np.ndarray:
        """``name``'s ground-truth mask as boolean ``(H, W)``, read as the organisers read it
        (:func:`~medico.data.masks.read_mask`): decoded once per process for these exact bytes (see :func:`_decoded`).

        Raises:
            ImageReadError: the mask file is unreadable or not a binary mask.
        """
        packed, shape = self._packed(name)
        return np.unpackbits(packed, count=shape[0] * shape[1]).view(bool).reshape(shape)

    def _packed(self, name: str) -> tuple[np.ndarray, tuple[int, int]]:
        """``name``'s mask packed 1 bit a pixel, and its shape: from the cache when decoded from these bytes."""
        path = self.paths[name]
        try:
            data = path.read_bytes()
        except OSError as error:
            raise ImageReadError(f"{path}: cannot read image ({type(error).__name__}: {error})") from error
        digest = hashlib.sha256(data).digest()  # the bytes decoded: a file changed since the fingerprint is no match
        decoded = _decoded(self.fingerprint)
        if name not in decoded or decoded[name][0] != digest:
            mask = read_mask(data, label=str(path))
            decoded[name] = digest, np.packbits(mask), mask.shape
        return decoded[name][1], decoded[name][2]

    def decode(self) -> None:
        """Decode every mask, as the scorer reads them, into this process's cache: a truth that cannot be scored is
        refused before any archive is scored against it, and a process forked from this one (the challenge worker's
        child per archive) finds every mask decoded.

        Raises:
            MedicoError: masks that are unreadable or not binary (RGB frames, say); the first few are named.
        """
        bad: dict[str, str] = {}
        for name in sorted(self.sizes):
            try:
                self._packed(name)
            except ImageReadError as error:
                bad[name] = str(error)
        if bad:
            folder = self.paths[next(iter(bad))].parent
            raise MedicoError(
                f"--truth {folder}: expected binary masks, but {len(bad)} of the {len(self.sizes)} masks scored "
                f"cannot be read as one ({some(list(bad))}); the first: {next(iter(bad.values()))}"
            )


@functools.lru_cache(maxsize=1)
def _decoded(fingerprint: str) -> dict[str, tuple[bytes, np.ndarray, tuple[int, int]]]:
    """The masks decoded so far of the truth with this fingerprint, each with the SHA-256 of the bytes it was
    decoded from (a file edited after the fingerprint was taken is decoded again, never kept under it), packed 1 bit
    a pixel: the challenge's worker scores every archive of a round against the same truth and decodes each mask
    once instead of once an archive. Only the latest truth is kept (a 160-image test set: about 10 MB)."""
    return {}


def score_masks(
    archive: Path, reference: Truth, *, paper: bool = False
) -> tuple[EvaluationResult, ValidationReport]:
    """Validate ``archive`` against ``reference`` and score each of its masks (read in memory, one at a time);
    ``paper`` adds the measures polyp papers report, computed from the binary masks (an archive holds no
    probabilities; the policy says so).

    Returns:
        the per-image scores (in name order) with their summary, and the validation report.

    Raises:
        InvalidSubmissionError: the archive breaks a rule; ``error.report`` lists the problems.
    """
    counts: dict[str, np.ndarray] = {}
    measures: dict[str, dict[str, float]] = {}

    def score(stem: str, mask: np.ndarray) -> None:
        truth_mask = reference.mask(stem)
        counts[stem] = confusion_counts(mask, truth_mask)
        if paper:
            binary = mask.astype(bool)
            measures[stem] = paper_scores(binary.astype(np.float64), binary, truth_mask)

    expected = reference.sizes
    report = validate_archive(archive, expected, on_mask=score)
    if not report.ok:
        raise InvalidSubmissionError(report)
    names = sorted(counts)
    heights_widths = [(expected[n][1], expected[n][0]) for n in names]
    stacked = np.stack([counts[n] for n in names])
    policy = METRIC_POLICY | ({"paper_measures": PAPER_POLICY | {"input": MASK_INPUT}} if paper else {})
    paper_rows = [measures[n] for n in names] if paper else None
    return EvaluationResult.from_counts(names, heights_widths, stacked, policy, paper=paper_rows), report


def score_archive(
    archive: Path,
    truth: Path,
    team: str,
    *,
    run: int | None = None,
    db: Path | None = None,
    names: Sequence[str] | None = None,
    paper: bool = False,
) -> ScoreResult:
    """Validate ``archive`` against the ground-truth masks in ``truth``, score it, write results, record it.

    Args:
        archive: a task 1 zip.
        truth: folder of ground-truth masks named by image stem (read as the organisers read them).
        team: the team the entry is recorded for.
        run: the run number; default: ``N`` from a name ending in ``_task1_runN``.
        db: the leaderboard database (default: the store's default).
        names: the images the archive must cover when ``truth`` holds more masks (default: every mask in it).
        paper: also score the measures polyp papers report (:mod:`medico.polyp_metrics`), from the binary masks.

    Raises:
        InvalidSubmissionError: the archive breaks a rule (exit code 1); ``error.report`` lists the problems.
        RunNumberError: ``run``, or the one in the archive's name, is not a run number (1 to 2**63-1).
    """
    archive = Path(archive)
    check_team_name(team)  # the entry's own rule, asked before the archive is scored rather than after
    if run is not None:
        check_run_number(run, "--run")
    elif (named := run_in_name(archive.stem, "segmentation")) is not None:
        run = check_run_number(named, f"archive {archive.name}: run")
    reference = Truth.read(Path(truth), names)
    evaluation, report = score_masks(archive, reference, paper=paper)
    entry = Entry.from_evaluation(
        evaluation,
        team=team,
        **_manifest_fields(archive),
        split="test",
        source="submission",
        run=run,
        sha256=file_sha256(archive),
        dataset_fingerprint=reference.fingerprint,
        dataset=f"truth {Path(truth).resolve().name} {reference.fingerprint[:8]}, {len(reference.sizes)} images",
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        note=f"archive {archive.name}",
    )
    scores_csv, summary_json = (archive.with_name(f"{archive.stem}_{kind}") for kind in ("scores.csv", "summary.json"))
    store = LeaderboardStore(db)
    # the scorer's own files: scoring the same archive again rewrites them
    with atomic_path(scores_csv, replace=True) as scores_tmp, atomic_path(summary_json, replace=True) as summary_tmp:
        scores_tmp.write_text(evaluation.per_image.to_csv(index=False), encoding="utf-8")
        with store.adding(entry) as entry_id:
            record = json.dumps(_summary(archive, entry, evaluation, entry_id), indent=2) + "\n"
            summary_tmp.write_text(record, encoding="utf-8")
    return ScoreResult(
        archive, entry.sha256, entry.team, run, entry.model, evaluation, scores_csv, summary_json, entry_id, report
    )


def _summary(archive: Path, entry: Entry, evaluation: EvaluationResult, entry_id: int | None) -> dict[str, Any]:
    return {
        "archive": archive.name,
        "archive_sha256": entry.sha256,
        "team": entry.team,
        "run": entry.run,
        "model": entry.model,
        "task": entry.task,
        "split": entry.split,
        "scores": evaluation.summary,
        "metric_policy": evaluation.policy,
        "leaderboard_entry": entry_id,
        "already_on_leaderboard": entry_id is None,
        "scored": entry.created,
        "medico_version": __version__,
    }
