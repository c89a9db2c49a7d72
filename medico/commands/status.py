"""``medico status``: a team's submissions on a hosted challenge, their states and public scores, and the uploads
left; also the upload step of ``medico submit --to``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from medico.challenge.client import ChallengeClient, InvalidUploadError, read_token
from medico.console import console, err_console

__all__ = ["status", "upload_and_wait"]

ServerURL = Annotated[str, typer.Option("--to", help="The challenge server's address, e.g. http://127.0.0.1:8000.")]
TokenFile = Annotated[Path, typer.Option("--token-file", help="File holding your team's token (not the token).")]


def _score(scores: dict[str, Any], part: str, name: str) -> str:
    return f"{scores[part][name]:.4f}" if part in scores else "-"


def status(to: ServerURL, token_file: TokenFile) -> None:
    """Show your team's submissions on a hosted challenge: states, public mIoU and Dice, and uploads left."""
    mine = ChallengeClient(to, read_token(token_file)).status()
    table = Table(title=f"team {escape(mine['team'])} on {escape(to)}")
    for header in ("id", "state", "received", "public mIoU", "public Dice", "selected"):
        table.add_column(header, justify="right" if header in ("id", "public mIoU", "public Dice") else "left")
    for item in mine["submissions"]:
        table.add_row(  # the server's text is shown as text, never as markup
            str(item["id"]), escape(str(item["state"])), escape(str(item["received"])[:19]),
            _score(item["scores"], "public", "iou"),
            _score(item["scores"], "public", "dice"), "yes" if item["selected"] else "",
        )
    console.print(table)
    today = "no daily limit" if mine["left_today"] is None else f"{mine['left_today']} left today"
    console.print(f"uploads: {today}, {mine['left_total']} left in total")


def upload_and_wait(to: str, token_file: Path, archive: Path) -> None:
    """Upload ``archive`` with a progress bar, wait for the server's score, print it and the team's public rank."""
    client = ChallengeClient(to, read_token(token_file))
    size = archive.stat().st_size
    columns = (TextColumn("uploading"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        bar = progress.add_task("upload", total=size)
        answer = client.upload(archive, lambda done: progress.update(bar, completed=done))
    seen = "already uploaded as" if answer["duplicate"] else "uploaded as"
    console.print(f"{escape(archive.name)} {seen} submission {answer['id']}; waiting for its score")
    result = client.wait(answer["id"])
    if result["state"] == "invalid":
        for message in result["messages"]:
            err_console.print(f"  {escape(message)}")
        raise InvalidUploadError(f"submission {answer['id']} is invalid ({len(result['messages'])} problems above)")
    team = client.status()["team"]
    board = client.leaderboard()
    teams = [row for row in board["rows"] if row.get("source", "submission") == "submission"]  # not published rows
    rank = next((row["rank"] for row in teams if row["team"] == team), None)
    scores = result["scores"]
    console.print(
        f"[green]submission {answer['id']} scored[/]: public mIoU {_score(scores, 'public', 'iou')}, "
        f"Dice {_score(scores, 'public', 'dice')}; team {escape(team)} ranks {rank if rank else '-'} of "
        f"{len(teams)} on the {board['part']} leaderboard"
    )
