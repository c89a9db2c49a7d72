"""A hosted challenge's settings: what ``medico challenge init`` chose, kept in ``challenge.toml`` in its folder.

One type, :class:`Settings`, checks every value when made (read from the file or from the command line), so the
web app, the worker and the commands all read the same, valid settings. Times are aware UTC datetimes: a time
given without a zone is read as UTC.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import tomllib

from medico.errors import MedicoError
from medico.leaderboard.participant import plain_text
from medico.submission.validator import MAX_ARCHIVE_BYTES

__all__ = ["SETTINGS_FILE", "ChallengeError", "Settings", "parse_time", "read_settings", "settings_text"]

SETTINGS_FILE = "challenge.toml"
MAX_NAME = 120
MAX_SCORING_SECONDS = 86_400
"""The longest time limit per archive: a day (and a whole number of seconds the system's alarm can hold)."""
MIN_SCORING_SECONDS = 5.0
MIN_SCORING_BYTES = 64 * 2**20
"""The tightest limits per archive: an honest 160-mask archive takes about 0.25 s and a few MB on a 2-core machine, so
a limit below these would make honest archives invalid, each spending one of its team's uploads."""


class ChallengeError(MedicoError):
    """A challenge folder, its settings or a request to it is not what it should be; the message says which."""


def parse_time(text: str, label: str) -> datetime:
    """``text`` (ISO 8601, e.g. ``2026-12-01T12:00``) as an aware UTC datetime; no zone means UTC.

    Raises:
        ChallengeError: ``text`` is not a date and time, or one whose UTC time is before year 1 or after 9999.
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ChallengeError(f"{label} {text!r}: expected a date and time such as 2026-12-01T12:00Z") from None
    return _utc(moment, label)


def _utc(moment: datetime, label: str) -> datetime:
    """``moment`` in UTC (no zone: UTC), refused when UTC has no such time (9999-12-31T23:59-01:00)."""
    try:
        return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    except OverflowError:
        raise ChallengeError(f"{label} {moment.isoformat()}: expected a time between years 1 and 9999 in UTC, found "
                             "one outside them") from None


@dataclass(frozen=True)
class Settings:
    """A challenge's settings, checked when made.

    ``truth`` and ``images`` are absolute folders the server reads (never copied or served; a blank path is refused,
    never read as the current folder; in the file, a relative one is the challenge folder's); ``seed`` draws the
    public/private partition; ``max_per_day`` (per UTC day, None: no daily limit) and ``max_total`` bound each
    team's uploads; ``count_invalid``: an archive invalid by its own fault counts towards them (one the server
    failed to score never does); ``max_upload_bytes`` caps one upload; ``max_scoring_seconds`` (wall time) and
    ``max_scoring_bytes`` (memory beyond the worker's own) bound the validation and scoring of one archive, far above
    what an honest archive takes (160 Kvasir-SEG masks: about a second and 100 MB); ``opens``/``closes`` bound the
    submission period; ``published`` shows the published figures of ``baselines/reported.csv`` on the leaderboard,
    marked, each ranked in its own table (they were measured on other test sets).

    ``per_image_before_close`` shows a team its per-image scores on the public images before the close (default: only
    its aggregate public scores, as Kaggle and Codabench show, so the public images' answers cannot be probed one by
    one); after the close every team sees its per-image scores on all images.
    """

    name: str
    truth: Path
    images: Path
    public_fraction: float = 0.5
    seed: int = 0
    max_per_day: int | None = None
    max_total: int = 5
    count_invalid: bool = True
    max_upload_bytes: int = MAX_ARCHIVE_BYTES
    max_scoring_seconds: float = 120.0
    max_scoring_bytes: int = 4 * 2**30
    opens: datetime | None = None
    closes: datetime | None = None
    published: bool = False
    per_image_before_close: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ChallengeError("--name: expected the challenge's name, got nothing")
        object.__setattr__(self, "name", plain_text(self.name.strip(), MAX_NAME))
        for label in ("truth", "images"):
            value = getattr(self, label)
            if not isinstance(value, str | os.PathLike) or not str(value).strip():  # "" would be the current folder
                raise ChallengeError(f"--{label}: expected a folder, got {value!r}")
            object.__setattr__(self, label, Path(value).absolute())
        fraction = self.public_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction < 1:
            raise ChallengeError(f"--public-fraction: expected a number strictly between 0 and 1, got {fraction!r}")
        for label, value, low in (("seed", self.seed, 0), ("max-total", self.max_total, 1),
                                  ("max-upload-bytes", self.max_upload_bytes, 1),
                                  ("max-scoring-bytes", self.max_scoring_bytes, MIN_SCORING_BYTES)):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value < 2**63:
                raise ChallengeError(f"--{label}: expected a whole number of at least {low}, got {value!r}")
        seconds = self.max_scoring_seconds
        bounds = MIN_SCORING_SECONDS <= seconds <= MAX_SCORING_SECONDS if isinstance(seconds, int | float) else False
        if isinstance(seconds, bool) or not bounds:
            raise ChallengeError(f"--max-scoring-seconds: expected a number of seconds from {MIN_SCORING_SECONDS:g} "
                                 f"to {MAX_SCORING_SECONDS:,} (an honest archive takes about a second), "
                                 f"got {seconds!r}")
        for label in ("published", "count_invalid", "per_image_before_close"):
            if not isinstance(getattr(self, label), bool):
                raise ChallengeError(f"{label}: expected true or false, got {getattr(self, label)!r}")
        per_day = self.max_per_day
        if per_day is not None and (isinstance(per_day, bool) or not isinstance(per_day, int) or per_day < 1):
            raise ChallengeError(f"--max-per-day: expected a whole number of at least 1, got {per_day!r}")
        for label in ("opens", "closes"):
            value = getattr(self, label)
            if value is not None and not isinstance(value, datetime):
                raise ChallengeError(f"--{label}: expected a date and time, got {value!r}")
            if value is not None:
                object.__setattr__(self, label, _utc(value, f"--{label}"))
        if self.opens is not None and self.closes is not None and self.closes <= self.opens:
            raise ChallengeError(f"--closes {self.closes.isoformat()}: expected a time after --opens "
                                 f"{self.opens.isoformat()}")


def settings_text(settings: Settings) -> str:
    """The settings as TOML (strings in JSON's escaping, which TOML shares; times as TOML datetimes)."""
    lines = ["# medico challenge settings (written by `medico challenge init`)"]
    for key, value in asdict(settings).items():
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, datetime):
            text = value.isoformat()
        elif isinstance(value, str | Path):
            text = json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")
        else:
            text = repr(value)
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def read_settings(path: Path) -> Settings:
    """The settings in the TOML file ``path``, checked.

    Raises:
        ChallengeError: the file is missing, not TOML, has unknown keys or a value out of range; the message names
            the file.
    """
    try:
        document: dict[str, Any] = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ChallengeError(f"{path}: no challenge settings here (medico challenge init creates them)") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ChallengeError(f"{path}: cannot read the challenge settings: {error}") from None
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(document) - known)
    if unknown:
        raise ChallengeError(f"{path}: unknown settings {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    for key in ("truth", "images"):  # a relative folder is the challenge folder's, wherever the server starts
        if isinstance(document.get(key), str) and document[key].strip():
            document[key] = Path(path).absolute().parent / document[key]
    try:
        return Settings(**document)
    except TypeError as error:
        raise ChallengeError(f"{path}: {error}") from None
    except ChallengeError as error:
        raise ChallengeError(f"{path}: {_named_by_keys(str(error))}") from None


def _named_by_keys(message: str) -> str:
    """A :class:`Settings` message as the settings file's reader needs it: each option (``--max-total``) named by
    its key in the file (``max_total``)."""
    for field in fields(Settings):
        message = message.replace(f"--{field.name.replace('_', '-')}", field.name)
    return message
