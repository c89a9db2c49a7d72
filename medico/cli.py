"""The ``medico`` command line: the root app. Each command group lives in :mod:`medico.commands`.

Errors a user can cause (:class:`medico.errors.MedicoError`) are printed on stderr, without a traceback, and
exit with the error's code.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from typer.core import TyperGroup

from medico import __version__
from medico.commands import (
    bench,
    compare,
    data,
    evaluate,
    leaderboard,
    models,
    predict,
    run,
    score,
    show,
    submit,
    train,
    validate,
)
from medico.console import console, err_console
from medico.errors import MedicoError
from medico.runtime import autotune_convolutions, tune_allocator

__all__ = ["app"]


class _MedicoGroup(TyperGroup):
    """Turns a MedicoError raised by any subcommand into a one-line message and its exit code."""

    def invoke(self, ctx: typer.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except MedicoError as error:
            err_console.print(f"[bold red]error:[/] {escape(str(error))}")
            raise typer.Exit(error.exit_code) from error


app = typer.Typer(
    cls=_MedicoGroup,
    name="medico",
    help="A harness for polyp-segmentation challenges (MediaEval 2020 Medico).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        console.print(f"medico {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """A harness for polyp-segmentation challenges (MediaEval 2020 Medico)."""
    tune_allocator()
    autotune_convolutions()


app.command("models")(models.models)
app.command("run")(run.run)
app.command("train")(train.train)
app.command("evaluate")(evaluate.evaluate)
app.command("predict")(predict.predict)
app.command("bench")(bench.bench)
app.command("compare")(compare.compare)
app.command("show")(show.show)
app.command("overlay")(show.overlay)
app.command("submit")(submit.submit)
app.command("validate")(validate.validate)
app.command("score")(score.score)
app.command("leaderboard")(leaderboard.leaderboard)
app.add_typer(data.app, name="data")
