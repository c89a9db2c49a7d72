"""The organiser's report on a simulated challenge: 20 teams of differing skill on 160 test images, each team's
per-image scores drawn at random (seeded) and written into a real challenge database through medico's own functions
(``init_challenge``, ``add_team``, ``add_submission``, ``claim_next``, ``record_outcome``, ``close_challenge``), as the
server's worker would record them. Builds the report, prints how long it took, the standings' rebuild time (the rank
intervals of ``GET /`` after close) and the key numbers; writes the HTML (and the JSON beside it). Asserts nothing.

    PYTHONPATH=. python scripts/simulate_challenge_report.py --out simulated-report.html
    PYTHONPATH=. python scripts/simulate_challenge_report.py --teams 8 --images 60 --seed 3 --resamples 2000

Team t's IoU on image i is ``sigmoid(skill_t + difficulty_i + noise)`` (skills evenly spaced, with a few teams of
almost equal skill; difficulty shared by every team, as real images are hard or easy for all); Dice is
``2 IoU / (1 + IoU)``, as it is for one image. Each team uploads 1 to 3 submissions and is ranked by its best public
one.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from medico.challenge.folder import Challenge, init_challenge
from medico.challenge.partition import Part
from medico.challenge.phase import close_challenge
from medico.challenge.queue import Outcome, claim_next, partition, record_outcome
from medico.challenge.report import analyse, report_text
from medico.challenge.settings import Settings
from medico.challenge.standings import standings
from medico.challenge.submissions import add_submission
from medico.challenge.teams import add_team, authenticate
from medico.files import write_atomic
from medico.leaderboard.entry import SCORES
from medico.submission import mask_png

START = datetime(2026, 9, 1, tzinfo=timezone.utc)


def _test_set(folder: Path, count: int) -> tuple[Path, Path]:
    """``count`` tiny test images and their masks (init checks that the truth reads as binary masks)."""
    truth, images = folder / "truth", folder / "images"
    truth.mkdir(parents=True)
    images.mkdir(parents=True)
    mask = np.zeros((8, 8), bool)
    mask[2:6, 2:6] = True
    for index in range(count):
        (truth / f"frame{index:03d}.png").write_bytes(mask_png(mask))
        Image.new("RGB", (8, 8), (120, 60, 50)).save(images / f"frame{index:03d}.jpg")
    return truth, images


def _scores(iou: np.ndarray) -> list[dict[str, float]]:
    """Every score of each image from its IoU: Dice = 2 IoU / (1 + IoU); precision, recall and F2 as Dice (as when
    the misses and the false alarms are equal); accuracy high, as polyps cover a small part of a frame."""
    dice = 2 * iou / (1 + iou)
    return [{"iou": float(j), "dice": float(d), "precision": float(d), "recall": float(d), "f2": float(d),
             "accuracy": float(0.9 + 0.1 * j)} for j, d in zip(iou, dice)]


def _outcome(names: list[str], iou: np.ndarray, parts: dict[str, Part]) -> Outcome:
    """What the worker records for an archive scoring ``iou`` on ``names``: each part's means, each image's scores."""
    images = dict(zip(names, _scores(iou)))
    means = {}
    for part in sorted(set(parts.values())):
        rows = [images[name] for name in names if parts[name] == part]
        means[part] = {name: statistics.fmean(row[name] for row in rows) for name in SCORES} | {"n_images": len(rows)}
    return Outcome(parts=means, images=images)


def simulate(folder: Path, teams: int, images: int, seed: int) -> Challenge:
    """A closed challenge in ``folder`` with ``teams`` teams' scored submissions on ``images`` test images."""
    truth, pictures = _test_set(folder / "data", images)
    challenge = init_challenge(folder / "challenge", Settings(name="Simulated polyps", truth=truth, images=pictures,
                                                              seed=seed, max_total=5))
    rng = np.random.default_rng(seed)
    names = sorted(partition(challenge))
    parts = partition(challenge)
    difficulty = rng.normal(0.0, 0.9, images)
    skills = np.linspace(1.6, 0.2, teams)
    skills[1:4] = skills[1]  # three teams of the same skill just behind the best
    now = START
    for number, skill in enumerate(skills, start=1):
        token = add_team(challenge, f"team-{number:02d}", now)
        team = authenticate(challenge, token)
        assert team is not None
        for upload in range(int(rng.integers(1, 4))):
            now += timedelta(minutes=7)
            path = challenge.uploads / f"upload-{number}-{upload}.tmp"
            path.write_bytes(f"{number}-{upload}".encode())
            add_submission(challenge, team, path, hashlib.sha256(path.read_bytes()).hexdigest(), now, "simulated")
            claim = claim_next(challenge)
            assert claim is not None
            iou = 1 / (1 + np.exp(-(skill + 0.1 * upload + difficulty + rng.normal(0.0, 0.7, images))))
            record_outcome(challenge, claim, _outcome(names, iou, parts), now)
    close_challenge(challenge, now + timedelta(days=1))
    return challenge


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teams", type=int, default=20)
    parser.add_argument("--images", type=int, default=160, help="test images (half of them private)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the simulated scores and the report's bootstrap")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("simulated-report.html"))
    parser.add_argument("--force", action="store_true", help="replace --out (and its .json) if they exist")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as temporary:
        started = time.perf_counter()
        challenge = simulate(Path(temporary), options.teams, options.images, options.seed)
        print(f"simulated {options.teams} teams on {options.images} images in {time.perf_counter() - started:.1f} s")
        now = datetime.now(timezone.utc)

        rebuilds = []
        for _ in range(5):
            started = time.perf_counter()
            board = standings(challenge, "closed")
            rebuilds.append(time.perf_counter() - started)
        print(f"standings after close (ranks with their bootstrap intervals): {statistics.median(rebuilds) * 1000:.0f} "
              f"ms per rebuild (median of 5); top 3: "
              + ", ".join(f"{row.rank} ({row.interval[0]}–{row.interval[1]}) {row.entry.team}"
                          for row in board.rows[:3] if row.interval))

        started = time.perf_counter()
        report = analyse(challenge, now, seed=options.seed, resamples=options.resamples)
        analysed = time.perf_counter() - started
        page = report_text(report, "html")
        drawn = time.perf_counter() - started - analysed
        document = report_text(report, "json")
    total = analysed + drawn
    print(f"report: {total:.2f} s ({analysed:.2f} s of statistics, {drawn:.2f} s of figures and page), "
          f"{len(page) / 1e6:.2f} MB of HTML")
    winner = report.teams[0]
    tau = report.kendall_summary()
    low, high = winner.miou_interval
    first, last = winner.rank_interval
    print(f"winner: {winner.team}, mIoU {winner.miou:.4f} [{low:.4f}, {high:.4f}], 95% rank interval {first}–{last}, "
          f"ranked first in {winner.rank_frequencies[0]:.1%} of {report.resamples} resamples")
    print(f"Kendall's tau: median {tau['median']:.3f}, 2.5–97.5%: {tau['p2.5']:.3f} to {tau['p97.5']:.3f}")
    print(f"teams sharing rank 1 under test-then-rank: {report.methods['test then rank'].count(1)}")
    print(f"teams whose rank changes with the aggregation (mean or median, rank-then-mean, mIoU or Dice): "
          f"{len(report.moved_by_aggregation())} of {len(report.teams)}")
    written = write_atomic(options.out, page, replace=options.force)
    write_atomic(options.out.with_suffix(".json"), document, replace=options.force)
    print(f"wrote {written} and {options.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
