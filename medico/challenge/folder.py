"""A challenge folder: ``challenge.toml`` (settings), ``challenge.sqlite`` (teams, partition, submissions, scores)
and ``uploads/`` (archives named by submission id, never by a name a client sent).

The ground truth stays where the organiser keeps it: the settings name its folder, the database records its
fingerprint per scoring round, and nothing of it is copied into the folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medico.challenge.database import DATABASE_FILE, ChallengeDatabase, timestamp
from medico.challenge.partition import draw_partition
from medico.challenge.settings import SETTINGS_FILE, ChallengeError, Settings, read_settings, settings_text
from medico.errors import some
from medico.files import atomic_folder

__all__ = ["UPLOADS", "Challenge", "init_challenge"]

UPLOADS = "uploads"


@dataclass(frozen=True)
class Challenge:
    """An existing challenge folder, its checked settings and its database."""

    folder: Path
    settings: Settings
    database: ChallengeDatabase

    @classmethod
    def open(cls, folder: Path) -> Challenge:
        """The challenge in ``folder``.

        Raises:
            ChallengeError: ``folder`` holds no challenge, or its settings or database are unusable.
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise ChallengeError(f"{folder}: no such folder; create a challenge with medico challenge init")
        return cls(folder, read_settings(folder / SETTINGS_FILE), ChallengeDatabase(folder / DATABASE_FILE))

    @property
    def uploads(self) -> Path:
        """Where received archives are kept."""
        return self.folder / UPLOADS

    def check_serving(self) -> None:
        """Refuse, in one line, a challenge the server could not work with: its truth or uploads not a folder.

        Raises:
            ChallengeError: the ``truth`` setting or ``uploads/`` is missing or not a folder.
        """
        if not self.settings.truth.is_dir():
            raise ChallengeError(f"{self.folder / SETTINGS_FILE}: truth {self.settings.truth}: not a folder; the "
                                 "server scores against the masks in it")
        if not self.uploads.is_dir():
            raise ChallengeError(f"{self.uploads}: missing or not a folder; the server keeps the uploads there")

    def archive(self, submission: int) -> Path:
        """The stored archive of submission ``submission``."""
        return self.uploads / f"{submission}.zip"


def init_challenge(folder: Path, settings: Settings) -> Challenge:
    """Create a challenge in ``folder`` (new or empty): check the truth covers the test images at their sizes and
    is read as binary masks by the scorer, draw and record the public/private partition, record the truth's
    fingerprint as scoring round 1. Nothing is written unless every check passes.

    Raises:
        ChallengeError: ``folder`` is not empty, or the truth and the test images disagree (names or sizes).
        MedicoError: a truth mask is unreadable or not binary (the first few are named).
    """
    from medico.submission.scorer import Truth  # reads masks with numpy and torch: only for init and scoring
    from medico.submission.validator import image_sizes

    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ChallengeError(f"{folder}: expected a new or empty folder for the challenge; nothing was changed")
    images = image_sizes(settings.images)
    truth = Truth.read(settings.truth, sorted(images))
    wrong = sorted(name for name, size in images.items() if truth.sizes[name] != size)
    if wrong:
        raise ChallengeError(
            f"--truth {settings.truth}: {len(wrong)} masks differ in size from their test images ({some(wrong)})"
        )
    truth.decode()  # as the worker reads it: RGB frames or photos given as the truth are refused now, not per upload
    partition = draw_partition(images, settings.public_fraction, settings.seed)
    with atomic_folder(folder) as staging:
        (staging / SETTINGS_FILE).write_text(settings_text(settings), encoding="utf-8")
        if read_settings(staging / SETTINGS_FILE) != settings:
            raise ChallengeError(f"--name {settings.name!r}: cannot be written to {SETTINGS_FILE} and read back as is")
        database = ChallengeDatabase.create(staging / DATABASE_FILE)
        with database.write() as connection:
            connection.executemany("INSERT INTO images (name, part) VALUES (?, ?)", sorted(partition.items()))
            connection.execute(
                "INSERT INTO rounds (round, truth_fingerprint, started) VALUES (1, ?, ?)",
                (truth.fingerprint, timestamp()),
            )
        (staging / UPLOADS).mkdir()
    return Challenge.open(folder)
