"""The ``medico`` command line: the root app. Each command lives in :mod:`medico.commands`.

A command's module is imported only when that command runs (or ``--help`` lists them all), so that the light
commands (``leaderboard``, ``validate``, ``data cache``...) start without importing torch. Errors a user can
cause (:class:`medico.errors.MedicoError`) are printed on stderr, without a traceback, and exit with the
error's code; so is a full disk met anywhere (inside torch or PIL too), as :func:`medico.files.disk_error` words it.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from medico import __version__
from medico.console import console, err_console
from medico.engine.allocator import tune_allocator
from medico.errors import MedicoError, MedicoWarning
from medico.files import disk_error
from medico.leaderboard.participant import plain_text

__all__ = ["COMMANDS", "app"]

MAX_MESSAGE = 4000
"""The longest error or note printed, in characters (longer ones end in an ellipsis)."""

COMMANDS: dict[str, str] = {
    "models": "medico.commands.models:models",
    "run": "medico.commands.run:run",
    "train": "medico.commands.train:train",
    "evaluate": "medico.commands.evaluate:evaluate",
    "predict": "medico.commands.predict:predict",
    "bench": "medico.commands.bench:bench",
    "export": "medico.commands.export:export",
    "compare": "medico.commands.compare:compare",
    "show": "medico.commands.show:show",
    "overlay": "medico.commands.show:overlay",
    "submit": "medico.commands.submit:submit",
    "validate": "medico.commands.validate:validate",
    "score": "medico.commands.score:score",
    "leaderboard": "medico.commands.leaderboard:leaderboard",
    "data": "medico.commands.data:app",
    "challenge": "medico.commands.challenge:app",
    "serve": "medico.commands.serve:serve",
    "status": "medico.commands.status:status",
}
"""Each command's name and where it lives: a function (one command) or a typer app (a group, ``medico data``)."""


@functools.cache
def _load_command(name: str) -> TyperCommand | TyperGroup:
    module, attribute = COMMANDS[name].split(":")
    target = getattr(importlib.import_module(module), attribute)
    if isinstance(target, typer.Typer):
        return typer.main.get_command(target)
    single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    single.command(name)(target)
    return typer.main.get_command(single)


def _shown(message: object) -> str:
    """An error or note as one line for the terminal: file names and values inside it may come from participants,
    so control and bidi characters show as escapes and markup as text."""
    return escape(plain_text(str(message), limit=MAX_MESSAGE))


def _note_printer(fallback: Callable[..., None]) -> Callable[..., None]:
    """A ``warnings.showwarning`` that prints a :class:`MedicoWarning` as a one-line note on stderr and passes
    other warnings to ``fallback``."""

    def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, MedicoWarning):
            err_console.print(f"[yellow]note:[/] {_shown(message)}")
        else:
            fallback(message, category, *args, **kwargs)

    return show


class _MedicoGroup(TyperGroup):
    """Loads each command when asked for it; turns a MedicoError raised by any of them (or a full disk) into a
    one-line message and its exit code, and a MedicoWarning into a one-line note."""

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: typer.Context, cmd_name: str) -> TyperCommand | TyperGroup | None:
        return _load_command(cmd_name) if cmd_name in COMMANDS else None

    def invoke(self, ctx: typer.Context):  # type: ignore[override]
        with warnings.catch_warnings():  # restores the warning filters and printer afterwards
            warnings.simplefilter("always", MedicoWarning)
            warnings.showwarning = _note_printer(warnings.showwarning)
            try:
                try:
                    return super().invoke(ctx)
                except OSError as error:
                    failure = disk_error(error)
                    if failure is None:
                        raise
                    raise failure from error
            except MedicoError as error:
                err_console.print(f"[bold red]error:[/] {_shown(error)}")
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
