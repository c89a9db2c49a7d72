"""The design section of the organiser's report: how the challenge was run, as the settings, the database and
medico's own rules state it (metric and aggregation, tie rule, mask policy, test set and its parts, limits, dates,
truth fingerprint), so that a reader of the ranking knows what it ranks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from medico.challenge.folder import Challenge
from medico.challenge.phase import closed_at, closing_time
from medico.challenge.standings import RANKED_SUBMISSION
from medico.leaderboard.ranking import SEGMENTATION_RULE
from medico.metrics import METRIC_POLICY
from medico.submission.validator import RULES

__all__ = ["design"]


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def design(challenge: Challenge) -> dict[str, Any]:
    """The challenge's design as JSON-ready sections of ``{what: value}`` (values None where not set)."""
    settings = challenge.settings
    with challenge.database.read() as connection:
        parts = dict(connection.execute("SELECT part, COUNT(*) FROM images GROUP BY part").fetchall())
        states = dict(connection.execute("SELECT state, COUNT(*) FROM submissions GROUP BY state").fetchall())
        teams = connection.execute("SELECT COUNT(*) FROM teams").fetchone()[0]
        first, last = connection.execute("SELECT MIN(received), MAX(received) FROM submissions").fetchone()
        truth = connection.execute(
            "SELECT round, truth_fingerprint, started FROM rounds ORDER BY round DESC LIMIT 1"
        ).fetchone()
        closed = closed_at(challenge, connection)
    return {
        "ranking": {
            "metric": "mIoU: each image's IoU (Jaccard) of predicted and true polyp, averaged over the private images",
            "aggregation": METRIC_POLICY["reduction"],
            "tie rule": SEGMENTATION_RULE,
            "ranked submission": RANKED_SUBMISSION,
            "threshold": METRIC_POLICY["threshold"],
            "resolution": METRIC_POLICY["resolution"],
            "masks read as": METRIC_POLICY["masks"],
            "empty masks": METRIC_POLICY["empty"],
            "missing masks": f"an archive with {RULES['missing']} is invalid and never scored (so no image is missing "
            "from a ranked submission)",
        },
        "test set": {
            "images": sum(parts.values()),
            "public images": parts.get("public", 0),
            "private images": parts.get("private", 0),
            "public fraction": settings.public_fraction,
            "partition seed": settings.seed,
        },
        "limits": {
            "uploads per team and UTC day": settings.max_per_day,
            "uploads per team": settings.max_total,
            "invalid archives count": settings.count_invalid,
            "largest upload (bytes)": settings.max_upload_bytes,
            "scoring time per archive (s)": settings.max_scoring_seconds,
            "scoring memory per archive (bytes)": settings.max_scoring_bytes,
        },
        "dates": {
            "opens": _time(settings.opens),
            "closes (setting)": _time(settings.closes),
            "closed by hand": _time(closed),
            "closed": _time(closing_time(settings, closed)),
            "first upload": first,
            "last upload": last,
        },
        "participation": {
            "teams": teams,
            "submissions": sum(states.values()),
            "scored": states.get("scored", 0),
            "invalid": states.get("invalid", 0),
            "waiting": states.get("queued", 0) + states.get("scoring", 0),
        },
        "truth": {"scoring round": truth["round"], "fingerprint": truth["truth_fingerprint"],
                  "round started": truth["started"]},
    }
