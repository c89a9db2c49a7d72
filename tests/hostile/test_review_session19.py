"""Review of session 19's additions: the ground truth's masks kept decoded by the scoring worker, ..."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

import medico.challenge.scoring
from medico.challenge.folder import Challenge
from medico.challenge.submissions import add_submission
from medico.challenge.teams import Team, add_team
from medico.challenge.worker import drain
from medico.submission import mask_png
from tests.challenge_setup import make_challenge, perfect_archive, truth_mask

NOW = datetime(2026, 12, 1, 12, tzinfo=timezone.utc)


def _submit(challenge: Challenge, team: Team, path: Path) -> int:
    upload = challenge.uploads / f"incoming-{path.name}"
    upload.write_bytes(path.read_bytes())
    return add_submission(challenge, team, upload, hashlib.sha256(path.read_bytes()).hexdigest(), NOW).id


def _image_dice(challenge: Challenge, submission: int) -> dict[str, float]:
    with challenge.database.read() as connection:
        rows = connection.execute("SELECT name, dice FROM image_scores WHERE submission_id = ?", (submission,))
        return {row["name"]: row["dice"] for row in rows}


def test_a_truth_mask_edited_during_one_scoring_and_put_back_never_scores_the_next_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The organiser edits a truth mask while the worker scores one archive, then puts the file back: the truth has
    the round's fingerprint again, so the next archive is scored against it, never against the edit the worker
    happened to decode under that fingerprint."""
    challenge = make_challenge(tmp_path)
    for name in ("alpha", "beta"):
        add_team(challenge, name, NOW)
    teams = [Team(1, "alpha"), Team(2, "beta")]
    first = _submit(challenge, teams[0], perfect_archive(tmp_path / "a.zip"))
    second = _submit(challenge, teams[1], perfect_archive(tmp_path / "b.zip"))
    mask_file = challenge.settings.truth / "case1.png"
    original = mask_file.read_bytes()
    edited = truth_mask()
    edited[:4] = False  # the top rows are not polyp
    real = medico.challenge.scoring.score_masks

    def edited_while_scoring(archive, truth, **options):  # type: ignore[no-untyped-def]
        if archive.name != f"{first}.zip":
            return real(archive, truth, **options)
        mask_file.write_bytes(mask_png(edited))
        try:
            return real(archive, truth, **options)
        finally:
            mask_file.write_bytes(original)  # put back: the truth is the round's again

    monkeypatch.setattr(medico.challenge.scoring, "score_masks", edited_while_scoring)
    assert drain(challenge) == 2
    assert _image_dice(challenge, second) == {name: 1.0 for name in ("case0", "case1", "case2", "case3")}
    assert np.isfinite(list(_image_dice(challenge, first).values())).all()
