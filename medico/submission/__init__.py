"""Submissions: task 1 masks archives, task 2 Docker build contexts, archive validation and organiser scoring."""

from medico.submission.efficiency import BASE_IMAGE, dockerfile, write_task2
from medico.submission.names import (
    MAX_RUNS,
    MAX_TEAM_NAME,
    RunNumberError,
    TeamNameError,
    check_team_name,
    choose_run,
    existing_runs,
    run_name,
    team_dir,
)
from medico.submission.scorer import ScoreResult, score_archive
from medico.submission.validator import (
    RULES,
    InvalidSubmissionError,
    Problem,
    ValidationReport,
    image_sizes,
    validate_archive,
)
from medico.submission.writer import SubmissionFiles, mask_png, write_task1

__all__ = [
    "BASE_IMAGE",
    "MAX_RUNS",
    "MAX_TEAM_NAME",
    "RULES",
    "InvalidSubmissionError",
    "Problem",
    "RunNumberError",
    "ScoreResult",
    "SubmissionFiles",
    "TeamNameError",
    "ValidationReport",
    "check_team_name",
    "choose_run",
    "dockerfile",
    "existing_runs",
    "image_sizes",
    "mask_png",
    "run_name",
    "score_archive",
    "team_dir",
    "validate_archive",
    "write_task1",
    "write_task2",
]
