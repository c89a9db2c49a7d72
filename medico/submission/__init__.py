"""Submissions: task 1 masks archives, task 2 Docker build contexts, archive validation and organiser scoring.

Each name loads its module on first use: validating an archive needs neither torch nor the model code.
"""

import importlib
from typing import Any

_LAZY = {
    **dict.fromkeys(
        ("BASE_IMAGE", "docker_commands", "dockerfile", "image_tag", "write_task2"), "medico.submission.efficiency"
    ),
    **dict.fromkeys(
        ("MAX_RUNS", "MAX_TEAM_NAME", "RunNumberError", "TeamNameError", "check_team_name", "choose_run",
         "existing_runs", "run_name", "team_dir"),
        "medico.submission.names",
    ),
    **dict.fromkeys(("ScoreResult", "Truth", "score_archive", "score_masks"), "medico.submission.scorer"),
    **dict.fromkeys(
        ("RULES", "InvalidSubmissionError", "Problem", "ValidationReport", "image_sizes", "validate_archive"),
        "medico.submission.validator",
    ),
    **dict.fromkeys(("Source", "SubmissionFiles", "mask_png", "write_task1"), "medico.submission.writer"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BASE_IMAGE",
    "MAX_RUNS",
    "MAX_TEAM_NAME",
    "RULES",
    "InvalidSubmissionError",
    "Problem",
    "RunNumberError",
    "ScoreResult",
    "Source",
    "SubmissionFiles",
    "TeamNameError",
    "Truth",
    "ValidationReport",
    "check_team_name",
    "choose_run",
    "docker_commands",
    "dockerfile",
    "existing_runs",
    "image_sizes",
    "image_tag",
    "mask_png",
    "run_name",
    "score_archive",
    "score_masks",
    "team_dir",
    "validate_archive",
    "write_task1",
    "write_task2",
]
