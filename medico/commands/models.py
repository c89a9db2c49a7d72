"""``medico models``: the registered model plugins."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from medico.console import console, err_console
from medico.plugins import get_plugin, list_models, plugin_errors


def models() -> None:
    """List registered model plugins (built-in, entry points, files) with their parameters and origin."""
    table = Table(title="medico model plugins")
    for column in ("name", "description", "parameters", "input", "options", "pretrained", "source"):
        table.add_column(column, overflow="fold")
    for name in list_models():
        plugin = get_plugin(name)
        try:
            count = f"{sum(p.numel() for p in plugin.build().parameters()):,}"
        except Exception as error:  # a third-party builder may fail; show it in its row, keep listing
            count = f"[red]build failed: {escape(type(error).__name__)}[/]"
        options = ", ".join(f"{k}={v!r}" for k, v in plugin.parameters.items())
        size = plugin.defaults.input_size
        table.add_row(
            escape(name),
            escape(plugin.description),
            count,
            f"{size}x{size}",
            escape(options),
            escape(", ".join(plugin.pretrained) or "-"),
            escape(plugin.origin),
        )
    console.print(table)
    for name, error in plugin_errors().items():
        err_console.print(f"[yellow]plugin {escape(name)!s} failed to load:[/] {escape(error)}")
