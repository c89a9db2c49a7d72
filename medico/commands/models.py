"""``medico models``: the registered model plugins, and ``--check NAME``: whether one keeps the model contract."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from medico.console import console, err_console
from medico.plugins import get_plugin, list_models, plugin_errors


def models(
    check: Annotated[
        str | None,
        typer.Option(
            "--check",
            help="Build this model (a name or file.py:builder spec), run one small forward pass and say in one line "
            "whether it keeps the contract: logits (B, 1, H, W), float, finite, with a gradient, no sigmoid inside.",
        ),
    ] = None,
    input_size: Annotated[
        int | None, typer.Option(min=1, help="With --check: the input side to check at (default: the plugin's).")
    ] = None,
) -> None:
    """List registered model plugins (built-in, entry points, files): parameters, input, options and origin.

    Parameters are counted on the meta device: no weights are allocated or downloaded for the listing.
    """
    if check is not None:
        from medico.engine.contract import check_plugin

        console.print(escape(check_plugin(check, input_size)))
        return
    table = Table(title="medico model plugins")
    for column in ("name", "description", "parameters", "input", "options", "pretrained", "source"):
        table.add_column(column, overflow="fold")
    for name in list_models():
        plugin = get_plugin(name)
        try:
            count = f"{plugin.parameter_count():,}"
        except Exception as error:  # a third-party builder may fail; show it in its row, keep listing
            count = f"[red]build failed: {escape(type(error).__name__)}[/]"
        options = ", ".join(f"{k}={v!r}" for k, v in plugin.parameters.items())
        size = plugin.defaults.input_size
        table.add_row(
            escape(name),
            escape(plugin.description),
            count,
            escape(f"{size}x{size}, {plugin.input.describe()}"),
            escape(options),
            escape(", ".join(plugin.pretrained) or "-"),
            escape(plugin.origin),
        )
    console.print(table)
    for name, error in plugin_errors().items():
        err_console.print(f"[yellow]plugin {escape(name)!s} failed to load:[/] {escape(error)}")
