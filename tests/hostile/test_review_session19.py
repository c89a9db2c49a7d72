"""Review of session 19's additions: the ground truth's masks kept decoded by the scoring worker, and what keeps the
worker scoring: a dead worker is replaced, but a mask that takes minutes to decode would stall the queue."""

from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import medico.challenge.scoring
from medico.challenge.folder import Challenge
from medico.challenge.submissions import add_submission
from medico.challenge.teams import Team, add_team
from medico.challenge.worker import drain
from medico.submission import mask_png
from medico.submission.validator import validate_archive
from tests.challenge_setup import HEIGHT, NAMES, WIDTH, make_challenge, perfect_archive, team_of, truth_mask

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
    teams = [team_of(challenge, "alpha"), team_of(challenge, "beta")]
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


def _progressive_jpeg(extra_scans: int) -> bytes:
    """The truth mask as a progressive JPEG (6 scans), its last scan repeated ``extra_scans`` more times: libjpeg
    decodes every scan over every block, so 50,000 scans (1 MB, under the zip-bomb ratio's floor) take 11 s to
    decode a 720x576 mask, half an hour of the worker's time for an archive of 160."""
    buffer = io.BytesIO()
    Image.fromarray(truth_mask().astype(np.uint8) * 255).save(buffer, "JPEG", progressive=True, quality=95)
    data = buffer.getvalue()
    last_scan = data[data.rfind(b"\xff\xda") : -2]
    return data[:-2] + last_scan * extra_scans + data[-2:]


def test_a_jpeg_mask_of_thousands_of_scans_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    expected = {name: (WIDTH, HEIGHT) for name in NAMES}
    masks = {f"{name}.png": mask_png(truth_mask()) for name in NAMES[1:]}
    path = tmp_path / "scans.zip"
    with zipfile.ZipFile(path, "w") as handle:
        for member, data in {**masks, "case0.jpg": _progressive_jpeg(3000)}.items():
            handle.writestr(member, data)
    report = validate_archive(path, expected)
    assert not report.ok
    assert [(p.entry, "3006 scans" in p.detail) for p in report.problems] == [("case0.jpg", True)]
    with zipfile.ZipFile(path, "w") as handle:  # an ordinary progressive JPEG mask is read as before
        for member, data in {**masks, "case0.jpg": _progressive_jpeg(0)}.items():
            handle.writestr(member, data)
    assert validate_archive(path, expected).ok
