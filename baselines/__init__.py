"""The registered baselines' settings (``<model>.toml``) and the published figures (``reported.csv``).

This folder is the repository's ``baselines/`` and, once installed, the package ``medico.baselines`` (its files
shipped as package data), so that a wheel trains with the same settings and shows the same published rows as a
checkout. A workspace overrides any of them with a file of the same name in its own ``./baselines/``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["WORKSPACE", "baseline_file"]

WORKSPACE = Path("baselines")
"""Where a workspace keeps files that replace the shipped ones (relative to the current folder)."""


def baseline_file(name: str) -> tuple[Path, str] | None:
    """``(path, label)`` of the file ``name``: the workspace's ``baselines/NAME`` when there is one, else the one
    shipped with medico; None when neither exists (or ``name`` is no plain file name). The label says which, for
    the run record."""
    if not name or Path(name).name != name or name.startswith("."):
        return None
    candidates = ((WORKSPACE / name, f"baselines/{name}"), (Path(__file__).with_name(name), f"medico's {name}"))
    for path, label in candidates:
        if path.is_file():
            return path, label
    return None
