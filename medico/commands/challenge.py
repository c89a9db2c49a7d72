"""``medico challenge init``, ``team add/list/revoke``, ``close``, ``rescore`` and ``report``: an organiser hosts a
challenge (served by ``medico serve``) and reports on it after the close."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from medico.challenge.folder import Challenge, init_challenge
from medico.challenge.phase import close_challenge
from medico.challenge.settings import ChallengeError, Settings, parse_time
from medico.challenge.teams import add_team, list_teams, revoke_team
from medico.console import console, err_console
from medico.leaderboard.rank_stability import RANK_RESAMPLES
from medico.submission.validator import MAX_ARCHIVE_BYTES

__all__ = ["app"]

app = typer.Typer(
    name="challenge", help="Host a challenge: create it, manage teams and tokens, close it, re-score it, report on it.",
    no_args_is_help=True,
)
team_app = typer.Typer(name="team", help="Add a team (prints its token once), list teams, revoke a token.",
                       no_args_is_help=True)
app.add_typer(team_app)

Folder = Annotated[Path, typer.Option("--dir", "-d", help="The challenge folder (default: the current folder).")]


def _now() -> datetime:
    return datetime.now(timezone.utc)


@app.command()
def init(
    folder: Annotated[Path, typer.Argument(help="A new or empty folder for the challenge.")],
    truth: Annotated[Path, typer.Option("--truth", help="Folder of ground-truth masks, named by image stem.")],
    images: Annotated[Path, typer.Option("--images", help="Folder of the test images participants predict.")],
    name: Annotated[str, typer.Option("--name", help="The challenge's name, shown on the leaderboard page.")],
    public_fraction: Annotated[
        float, typer.Option(help="Share of the test images scored on the public leaderboard (the rest is private).")
    ] = 0.5,
    seed: Annotated[int | None, typer.Option(help="Seed of the public/private draw (default: a random one).")] = None,
    max_per_day: Annotated[int | None, typer.Option(help="Uploads per team and UTC day (default: no limit).")] = None,
    max_total: Annotated[int, typer.Option(help="Uploads per team in all.")] = 5,
    count_invalid: Annotated[
        bool,
        typer.Option(
            help="Whether an archive that fails validation (or a time or memory limit) counts towards the limits: "
            "counting it stops probing of the hidden truth. One the server fails to score never counts.",
        ),
    ] = True,
    max_upload_bytes: Annotated[int, typer.Option(help="Largest upload accepted.")] = MAX_ARCHIVE_BYTES,
    max_scoring_seconds: Annotated[
        float, typer.Option(help="Wall time one archive's validation and scoring may take; beyond it, invalid.")
    ] = Settings.max_scoring_seconds,
    max_scoring_bytes: Annotated[
        int, typer.Option(help="Memory one archive's validation and scoring may take beyond the worker's own.")
    ] = Settings.max_scoring_bytes,
    opens: Annotated[str | None, typer.Option(help="When uploads open (ISO 8601; no zone: UTC).")] = None,
    closes: Annotated[str | None, typer.Option(help="When uploads close and the private ranking shows.")] = None,
    with_published: Annotated[
        bool,
        typer.Option(
            "--with-published",
            help="Show the published figures of baselines/reported.csv on the page, marked, in tables of their own "
            "(measured on other test sets: never ranked with the teams).",
        ),
    ] = False,
    per_image_before_close: Annotated[
        bool,
        typer.Option(
            "--per-image-before-close",
            help="Show each team its per-image scores on the public images before the close (default: only its "
            "aggregate public scores, so the public answers cannot be probed image by image).",
        ),
    ] = False,
) -> None:
    """Create a challenge: its settings, database and a recorded public/private partition of the test images.

    The truth stays where it is: the challenge records its folder and fingerprint, and never copies it.
    """
    import secrets

    settings = Settings(
        name=name,
        truth=truth,
        images=images,
        public_fraction=public_fraction,
        seed=secrets.randbelow(2**32) if seed is None else seed,
        max_per_day=max_per_day,
        max_total=max_total,
        count_invalid=count_invalid,
        max_upload_bytes=max_upload_bytes,
        max_scoring_seconds=max_scoring_seconds,
        max_scoring_bytes=max_scoring_bytes,
        opens=None if opens is None else parse_time(opens, "--opens"),
        closes=None if closes is None else parse_time(closes, "--closes"),
        published=with_published,
        per_image_before_close=per_image_before_close,
    )
    challenge = init_challenge(folder, settings)
    with challenge.database.read() as connection:
        parts = dict(connection.execute("SELECT part, COUNT(*) FROM images GROUP BY part").fetchall())
    console.print(
        f"[green]challenge {escape(settings.name)} created[/] in {escape(str(folder))}: "
        f"{parts.get('public', 0)} public and {parts.get('private', 0)} private test images; "
        f"add teams with medico challenge team add NAME --dir {escape(str(folder))}"
    )


@team_app.command("add")
def team_add(
    name: Annotated[str, typer.Argument(help="The team's name (a plain name: it is shown on the leaderboard).")],
    folder: Folder = Path("."),
) -> None:
    """Add a team and print its token, once: only a salted hash of it is kept. A revoked team gets a new token."""
    token = add_team(Challenge.open(folder), name, _now())
    err_console.print(f"token of team {escape(name)} (shown once: hand it to the team now):")
    sys.stdout.write(token + "\n")


@team_app.command("list")
def team_list(folder: Folder = Path(".")) -> None:
    """List the teams: when added, whether revoked, how many submissions."""
    table = Table(title="teams")
    for header in ("team", "added", "revoked", "submissions"):
        table.add_column(header, justify="right" if header == "submissions" else "left")
    for team in list_teams(Challenge.open(folder)):
        table.add_row(escape(team.name), team.created[:19], (team.revoked or "-")[:19], str(team.submissions))
    console.print(table)


@team_app.command("revoke")
def team_revoke(
    name: Annotated[str, typer.Argument(help="The team whose token stops working.")],
    folder: Folder = Path("."),
) -> None:
    """Revoke a team's token: its uploads and reads are refused from now on; its submissions stay ranked."""
    revoke_team(Challenge.open(folder), name, _now())
    console.print(f"token of team {escape(name)} revoked")


@app.command()
def close(folder: Annotated[Path, typer.Argument(help="The challenge folder.")]) -> None:
    """Close the challenge now: uploads stop and the leaderboard ranks by the private part."""
    closed = close_challenge(Challenge.open(folder), _now())
    console.print(f"challenge closed at {closed.isoformat()}: the leaderboard now shows the private ranking")


@app.command()
def rescore(
    folder: Annotated[Path, typer.Argument(help="The challenge folder.")],
    force: Annotated[bool, typer.Option("--force", help="Re-score even when the truth has not changed.")] = False,
) -> None:
    """Re-score every submission against the truth as it is now, in a new scoring round; earlier scores are kept."""
    from medico.challenge.queue import current_round, partition, start_round
    from medico.challenge.worker import drain
    from medico.submission.scorer import Truth

    challenge = Challenge.open(folder)
    truth = Truth.read(challenge.settings.truth, sorted(partition(challenge)))
    number, fingerprint = current_round(challenge)
    if truth.fingerprint == fingerprint and not force:
        console.print(f"the truth has not changed since scoring round {number}: nothing to re-score (--force does)")
        return
    number, queued = start_round(challenge, truth.fingerprint, _now())
    console.print(f"scoring round {number}: {queued} submissions queued")
    done = drain(challenge)
    console.print(f"[green]{done} submissions re-scored[/] (the running server's worker may have taken some)")


@app.command()
def report(
    folder: Annotated[Path, typer.Argument(help="The challenge folder.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Where to write the report (default: report.html or report.json)."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="html (a self-contained page with figures) or json.")] = "html",
    seed: Annotated[
        int | None,
        typer.Option(help="Seeds the bootstrap (default: the challenge's seed, as the leaderboard's rank intervals)."),
    ] = None,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples of the private images.")] = RANK_RESAMPLES,
    preview: Annotated[
        bool, typer.Option("--preview", help="Build it before the close (it holds private scores: do not publish it).")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out file.")] = False,
) -> None:
    """Write the organiser's report after the close: the design, the final ranking with bootstrap intervals of each
    team's mIoU and rank, rank stability (Kendall's tau), pairwise Wilcoxon tests (Holm) and the ranks under other
    ranking methods. Never served by medico serve: publish what you choose."""
    from medico.challenge.report import FORMATS, analyse, report_text
    from medico.files import check_target, write_atomic

    if fmt not in FORMATS:
        raise ChallengeError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    path = check_target(Path(f"report.{fmt}") if out is None else out, replace=force)  # before minutes of work
    result = analyse(Challenge.open(folder), _now(), seed=seed, resamples=resamples, preview=preview)
    written = write_atomic(path, report_text(result, fmt), replace=force)  # type: ignore[arg-type]
    state = "[yellow]preview[/] (not closed: do not publish)" if result.preview else "report"
    console.print(f"{state} of {escape(result.challenge)} written to [bold]{escape(str(written))}[/]: "
                  f"{len(result.teams)} teams, {result.resamples:,} bootstrap resamples, seed {result.seed}")
