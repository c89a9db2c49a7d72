"""``medico status``: the challenge's phase, a team's submissions on a hosted challenge, their states and public scores,
and the uploads left; also the steps of ``medico submit --to``: asking the server first, and the upload."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from medico.challenge.client import (
    ChallengeClient,
    ClientError,
    InvalidUploadError,
    Submitted,
    TeamStatus,
    read_token,
)
from medico.console import console, err_console

__all__ = ["check_upload_allowed", "status", "upload_and_wait"]

ServerURL = Annotated[str, typer.Option("--to", help="The challenge server's address, e.g. http://127.0.0.1:8000.")]
TokenFile = Annotated[Path, typer.Option("--token-file", help="File holding your team's token (not the token).")]


def _score(scores: dict[str, dict[str, float]], part: str, name: str) -> str:
    value = scores.get(part, {}).get(name)
    return "-" if value is None else f"{value:.4f}"


def _phase(mine: TeamStatus) -> str | None:
    """The challenge's phase as people say it: open until X, opens at X, closed since X (None: the server does not
    say, being an older medico's)."""
    if mine.phase == "before":
        return "the challenge opens " + (f"at {mine.opens}" if mine.opens else "later")
    if mine.phase == "closed":
        return "the challenge is closed" + (f" since {mine.closes}" if mine.closes else "")
    if mine.phase == "open":
        return "the challenge is open " + (f"until {mine.closes}" if mine.closes else "(no closing time)")
    return None


def _uploads(mine: TeamStatus) -> str:
    """The uploads left, as usable now: none after close; until the opening, what the team will have."""
    if mine.phase == "closed":
        return "uploads: none, the challenge is closed"
    today = "no daily limit" if mine.left_today is None else f"{mine.left_today} left today"
    line = f"uploads: {today}, {mine.left_total} left in total"
    if mine.phase == "before":
        return line + " once it opens"
    if mine.left_today == 0 and mine.left_total > 0 and mine.next_allowed:
        return line + f" (the next from {mine.next_allowed})"
    return line


def _selected(item: Submitted) -> str:
    if item.ranked:
        return "yes, ranked" if item.selected else "ranked"
    return "yes" if item.selected else ""


def status(to: ServerURL, token_file: TokenFile) -> None:
    """Show your team's submissions on a hosted challenge: the challenge's phase, states, public mIoU and Dice, uploads
    left, and after close the submission your team is ranked by (its selection, else its best public one)."""
    mine = ChallengeClient(to, read_token(token_file)).status()
    table = Table(title=f"team {escape(mine.team)} on {escape(to)}")
    for header in ("id", "state", "received", "public mIoU", "public Dice", "selected"):
        table.add_column(header, justify="right" if header in ("id", "public mIoU", "public Dice") else "left")
    for item in mine.submissions:
        table.add_row(  # the server's text is shown as text, never as markup
            str(item.id), escape(item.state), escape(item.received[:19]), _score(item.scores, "public", "iou"),
            _score(item.scores, "public", "dice"), _selected(item),
        )
    console.print(table)
    phase = _phase(mine)
    if phase is not None:
        console.print(escape(phase))
    console.print(escape(_uploads(mine)))
    if mine.phase == "closed":
        ranked = next((item for item in mine.submissions if item.ranked), None)
        how = "its selection" if ranked is not None and ranked.selected else "its best public submission"
        console.print(f"ranked by submission {ranked.id} ({how})" if ranked else "not ranked: no scored submission")


def upload_and_wait(to: str, token_file: Path, archive: Path, model: str | None = None) -> None:
    """Upload ``archive``, naming its ``model`` for the leaderboard, with a progress bar; wait for the server's score,
    print it and the team's public rank."""
    client = ChallengeClient(to, read_token(token_file))
    size = archive.stat().st_size
    columns = (TextColumn("uploading"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        bar = progress.add_task("upload", total=size)
        number, duplicate = client.upload(archive, lambda done: progress.update(bar, completed=done), model)
    seen = "already uploaded as" if duplicate else "uploaded as"
    console.print(f"{escape(archive.name)} {seen} submission {number}; waiting for its score")
    result = client.wait(number)
    if result.state == "invalid":
        for message in result.messages:
            err_console.print(f"  {escape(message)}")
        raise InvalidUploadError(f"submission {number} is invalid ({len(result.messages)} problems above)")
    team = client.status().team
    standing = client.standing(team)
    console.print(
        f"[green]submission {number} scored[/]: public mIoU {_score(result.scores, 'public', 'iou')}, "
        f"Dice {_score(result.scores, 'public', 'dice')}; team {escape(team)} ranks {standing.rank or '-'} of "
        f"{standing.teams} on the {escape(standing.part)} leaderboard"
    )


def check_upload_allowed(to: str, token_file: Path) -> None:
    """Ask the server whether it would take an upload from the team now, before anything is predicted or written.

    Raises:
        ClientError: it would not (not open yet, closed, no uploads left), saying why and until when.
    """
    refusal = ChallengeClient(to, read_token(token_file)).status().refusal()
    if refusal is not None:
        raise ClientError(f"{to}: {refusal}; nothing was predicted or written")
