"""``medico submit``: task 1 masks archive or task 2 Docker build context for a team's run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.markup import escape
from rich.table import Table

from medico.commands.options import MaskPrecision, Sweep, TrustedModel, Tta
from medico.console import console, err_console, task_progress
from medico.data.io import list_images
from medico.data.synthetic import synthetic_test_images
from medico.engine.runtime import MASK_PRECISION, resolve_device
from medico.errors import MedicoError
from medico.leaderboard.participant import check_team_name
from medico.leaderboard.team import TEAM_VARIABLE
from medico.runs.members import resolve_members
from medico.submission import MAX_RUNS, Source, SubmissionFiles, docker_commands, write_task1, write_task2
from medico.submission.names import SUBMISSIONS
from medico.submission.repeats import RepeatedMasksError, archive_model
from medico.weights import cache_dir


def _test_images(images: Path | None) -> list[Path]:
    if images is not None:
        return list_images(images)
    folder = cache_dir() / "synthetic-test-images"
    err_console.print(
        f"[yellow]no --images given: using synthetic test images in {escape(str(folder))}[/] "
        "(for the challenge: --images ../shared/data/medico2020-test/images)"
    )
    return synthetic_test_images(folder)


def _source_line(source: Source) -> str:
    """One checkpoint a submission came from, as rich markup: its file and model, its training run and that run's data
    (in yellow when synthetic), or that it lies outside any run folder."""
    line = f"made from {escape(str(source.checkpoint))} ({escape(source.model)}): "
    if source.training_run is None:  # a copied checkpoint still carries the record of the data it was trained on
        line += "no training run (a checkpoint file outside any run folder), "
    else:
        line += f"training run {escape(str(source.training_run))}, "
    if source.trained_on is None:
        return line + "its data not recorded"
    data = f"trained on {escape(source.trained_on)}"
    return line + (f"[yellow]{data}[/]" if source.synthetic else data)


def _print_summary(files: SubmissionFiles) -> None:
    table = Table(title=f"team {escape(files.team)}: task {1 if files.task == 'segmentation' else 2}, run {files.run}")
    table.add_column("", style="bold")
    table.add_column("", overflow="fold")
    what = "masks" if files.task == "segmentation" else "files"
    table.add_row("model", escape(files.model))
    table.add_row("written", escape(str(files.path)))
    table.add_row("manifest", escape(str(files.manifest)))
    table.add_row(what, f"{files.count:,}")
    table.add_row("size", f"{files.size:,} bytes")
    table.add_row("sha256" if files.task == "segmentation" else "weights sha256", files.sha256)
    console.print(table)
    for source in files.sources:  # a line each, never folded: a path to copy, a run folder to recognise
        console.print(_source_line(source), soft_wrap=True)


def _print_docker(files: SubmissionFiles) -> None:
    """How to build and run a task 2 context: the image from the context, then the container on a folder of images."""
    build, run = docker_commands(files.team, files.run, files.path)
    console.print("build the image, then segment a folder of images into a folder of masks (without an NVIDIA GPU, "
                  "leave out --gpus all):")
    console.print(f"  {escape(build)}", soft_wrap=True)
    console.print(f"  {escape(run)}", soft_wrap=True)


def _print_next(files: SubmissionFiles) -> None:
    """What a local task 1 archive gets: no score here, the organisers' scoring, and where the run's score is."""
    runs = sorted({str(source.training_run) for source in files.sources if source.training_run is not None})
    scored = ", ".join(runs) or "your runs"
    console.print(
        "next: the test images have no public ground truth, so this archive gets no score here; the organisers score "
        f"it (medico score {escape(str(files.path))} --truth MASKS --team {escape(files.team)}). `medico leaderboard` "
        f"shows the validation score of {escape(scored)} (the val split, each team's best run; --all-runs lists "
        "every run)."
    )


def submit(
    context: typer.Context,
    team: Annotated[
        str,
        typer.Option(
            "--team",
            envvar=TEAM_VARIABLE,
            help="Team name: a plain name (it becomes a folder and file name); default: $MEDICO_TEAM.",
        ),
    ],
    task: Annotated[
        Literal["segmentation", "efficiency"],
        typer.Option(help="segmentation: task 1 masks archive; efficiency: task 2 Docker build context."),
    ] = "segmentation",
    run: Annotated[
        int | None,
        typer.Option(
            help="The submission's run slot, 1 to --max-runs (default: the lowest free one); not the training run, "
            "which --checkpoint chooses."
        ),
    ] = None,
    checkpoint: Annotated[
        list[str] | None,
        typer.Option(
            help="A .pt checkpoint or a run (number, id, name, folder); default: the latest run. Repeated (task 1): "
            "the mean of their probabilities (an ensemble)."
        ),
    ] = None,
    images: Annotated[
        Path | None,
        typer.Option(
            help="Folder of test images (task 1; default: synthetic test images); for task 2, real frames to check a "
            "plugin's ONNX export on (default: its run's validation images)."
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Submissions folder; files go to OUT/TEAM/.")] = SUBMISSIONS,
    max_runs: Annotated[int, typer.Option(help="Most runs per team and task (the challenge allows 5).")] = MAX_RUNS,
    force: Annotated[
        bool,
        typer.Option(
            help="Overwrite an existing run given with --run; and write task 1 masks an earlier run of the team "
            "already holds (refused without it, since they would spend another of the team's runs)."
        ),
    ] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N (task 1 prediction).")] = "auto",
    precision: MaskPrecision = MASK_PRECISION,
    tta: Tta = "none",
    sweep: Sweep = None,
    model: TrustedModel = None,
    to: Annotated[
        str | None, typer.Option("--to", help="A hosted challenge's address: upload the task 1 archive there.")
    ] = None,
    token_file: Annotated[Path | None, typer.Option(help="With --to: the file holding your team's token.")] = None,
) -> None:
    """Write a submission: the task 1 masks archive (TEAM_task1_runN.zip) or the task 2 Docker build context.

    With --to and --token-file, the server is asked first whether it takes an upload from the team now (nothing is
    predicted when it does not); the task 1 archive is then uploaded to the hosted challenge (medico serve) with its
    model's name, and its score and the team's public rank printed once the server has scored it.
    """
    # by name: typer vendors its own click, whose ParameterSource is not click's
    from_environment = getattr(context.get_parameter_source("team"), "name", None) == "ENVIRONMENT"
    check_team_name(team, f"${TEAM_VARIABLE}" if from_environment else "--team")  # the option a bad name came from
    if (to is None) != (token_file is None) or (to is not None and task != "segmentation"):
        raise MedicoError("--to and --token-file go together, and upload a task 1 (segmentation) archive")
    if to is not None and token_file is not None:
        from medico.commands.status import check_upload_allowed

        check_upload_allowed(to, token_file)  # before predicting: a closed challenge or no uploads left stops here
    weights = resolve_members(checkpoint or [], sweep)
    if task == "efficiency":
        if len(weights) > 1:
            raise MedicoError(
                f"task 2 packs one checkpoint into its container, got {len(weights)} (an ensemble): give one"
            )
        files = write_task2(
            weights[0], out, team, run=run, max_runs=max_runs, force=force, model=model, images=images, tta=tta
        )
        _print_summary(files)
        _print_docker(files)
        return
    paths = _test_images(images)
    try:
        files = _predict_task1(paths, weights, out, team, run=run, max_runs=max_runs, force=force, device=device,
                               precision=precision, model=model, tta=tta)
    except RepeatedMasksError as repeated:  # an upload that failed or was cut off is sent again this way
        if to is None or token_file is None:
            raise
        console.print(f"{escape(str(repeated.archive))} already holds these masks: uploading it, no new run written")
        archive, named = repeated.archive, archive_model(repeated.archive)
    else:
        _print_summary(files)
        if to is None or token_file is None:
            _print_next(files)
            return
        archive, named = files.path, files.model
    from medico.commands.status import upload_and_wait

    upload_and_wait(to, token_file, archive, named)


def _predict_task1(
    paths: list[Path], weights: list[Path], out: Path, team: str, *, device: str, **settings: Any
) -> SubmissionFiles:
    """:func:`~medico.submission.write_task1` with a progress bar of the images predicted."""
    with task_progress() as progress:
        bar = progress.add_task("predicting masks", total=len(paths), status="")
        return write_task1(
            weights,
            paths,
            out,
            team,
            device=resolve_device(device),
            progress=lambda path: progress.update(bar, advance=1, status=path.name),
            **settings,
        )
