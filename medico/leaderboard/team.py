"""The team a local result counts for when no ``--team`` is given: ``$MEDICO_TEAM``, else the login name.

A newcomer's runs are listed under their login name (``root`` in a container); setting ``MEDICO_TEAM`` once names the
team for every run instead. The origin travels with the name so that output and records can say where it came from.
"""

from __future__ import annotations

import getpass
import os
from typing import NamedTuple

from medico.leaderboard.participant import TeamNameError, check_team_name

__all__ = ["TEAM_VARIABLE", "UNNAMED", "DefaultTeam", "default_team"]

TEAM_VARIABLE = "MEDICO_TEAM"
_LOGIN_NAME = "your login name"
_NO_LOGIN_NAME = "no plain login name"
UNNAMED = (_LOGIN_NAME, _NO_LOGIN_NAME)
"""The origins of a team nobody named (output then says how to name one)."""


class DefaultTeam(NamedTuple):
    """A default team name and where it came from (``$MEDICO_TEAM``, your login name, or none usable)."""

    name: str
    origin: str


def default_team() -> DefaultTeam:
    """``$MEDICO_TEAM`` when set (a plain name, else a TeamNameError naming the variable); else the login name; else
    ``anonymous`` where there is none or it is not a plain team name (``DOMAIN\\user``)."""
    if given := os.environ.get(TEAM_VARIABLE):
        return DefaultTeam(check_team_name(given, TEAM_VARIABLE), f"${TEAM_VARIABLE}")
    try:
        return DefaultTeam(check_team_name(getpass.getuser()), _LOGIN_NAME)
    except (KeyError, OSError, TeamNameError):
        return DefaultTeam("anonymous", _NO_LOGIN_NAME)
