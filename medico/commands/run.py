"""``medico run MODEL``: train, score the best checkpoint on validation, measure FPS, record and rank the run."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from medico.console import console, err_console, task_progress
from medico.engine.budget import format_duration
from medico.engine.distributed import DistributedError, launched_by_torchrun, run_distributed
from medico.engine.runtime import MASK_PRECISION
from medico.engine.training import STOP_BUDGET, EpochRecord, RunProgress, Trainer, TrainingObserver, TrainingResult
from medico.leaderboard import LeaderboardStore
from medico.leaderboard.render import leaderboard_tables
from medico.leaderboard.team import TEAM_VARIABLE, UNNAMED, default_team
from medico.leaderboard.view import leaderboard_rows
from medico.runs.config import COMMAND_LINE, ConfigError, RunConfig, RunOptions
from medico.runs.experiment import RunOutcome, RunPlan, finish_run, make_trainer, plan_run, run_tracking, train_run
from medico.runs.folder import RunFolder
from medico.runs.sweep import SWEEP_HEADERS, SWEEP_METRICS, SweepSummary, parse_seeds, run_sweep

__all__ = ["execute", "execute_distributed", "execute_sweep", "run"]

Data = Annotated[
    Path | None,
    typer.Option("--data", help="Kvasir-SEG-style folder or zip; none: the built-in synthetic set."),
]
SplitName = Annotated[
    str | None,
    typer.Option("--split", help="auto, medico2020, random (seeded 80:20) or a folder holding train.txt and val.txt."),
]
Epochs = Annotated[int | None, typer.Option("--epochs", help="Maximum epochs (early stopping may end sooner).")]
BatchSize = Annotated[
    int | None, typer.Option("--batch-size", help="Training batch size (of all processes together, with --nproc).")
]
InputSize = Annotated[int | None, typer.Option("--input-size", help="Square input side images are resized to.")]
Lr = Annotated[float | None, typer.Option("--lr", help="Adam learning rate.")]
Seed = Annotated[int | None, typer.Option("--seed", help="Seed for weights, shuffling and augmentation.")]
MaxTime = Annotated[
    str | None,
    typer.Option(
        "--max-time",
        help="Time budget of training, validation included, e.g. 30m, 90s, 1h30m: the lr anneals by a cosine to "
        "the end of the budget and training stops inside it (or at --epochs, if sooner).",
    ),
]
Average = Annotated[
    str | None,
    typer.Option(
        "--average",
        help="Weight averaging: ema validates and saves (in best.pt) a moving average of the weights, or none.",
    ),
]
EmaDecay = Annotated[
    float | None,
    typer.Option("--ema-decay", help="Decay of --average ema (default 0.999; warmed up over the first steps)."),
]
Pretrained = Annotated[
    str | None,
    typer.Option("--pretrained", help="Start from weights: brain-mri (unet/attunet), a file or a URL."),
]
Device = Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
PrecisionOption = Annotated[
    str | None,
    typer.Option(
        "--precision", help="fp32, bf16 or fp16 (default: bf16 where computed natively, else fp16 on GPU, fp32)."
    ),
]
Workers = Annotated[
    int | None,
    typer.Option("--workers", min=0, help="Data-loader worker processes (default: none on a CPU, up to 8 on a GPU)."),
]
ConfigFile = Annotated[
    Path | None, typer.Option("--config", help="TOML file of settings (same keys as baselines/<model>.toml).")
]
Resume = Annotated[
    str | None, typer.Option("--resume", help="Continue a run (number, id, name or latest) from last.pt.")
]
Name = Annotated[
    str | None,
    typer.Option(
        "--name",
        help="Name the run: its folder is runs/N-NAME, and NAME stands for it in every command (the newest run of "
        "that name). Letters, digits, '.', '-', '_'; not a number or latest.",
    ),
]
Options = Annotated[
    list[str] | None,
    typer.Option("--option", help="Builder option KEY=VALUE (repeatable), e.g. init_features=8."),
]
NProc = Annotated[
    int | None,
    typer.Option(
        "--nproc",
        help="Train with N processes on this machine (DistributedDataParallel: NCCL on GPUs, gloo on CPUs). "
        "Under torchrun leave it out.",
    ),
]
TrackerOption = Annotated[
    str | None,
    typer.Option(
        "--tracker",
        help="Also log epochs, config, final scores and overlays to tensorboard (RUN/tensorboard/) or mlflow "
        "($MLFLOW_TRACKING_URI, else ./mlruns); needs pip install 'medico[tensorboard]' or 'medico[mlflow]'.",
    ),
]
SyncBn = Annotated[
    bool | None,
    typer.Option(
        "--sync-bn/--no-sync-bn",
        help="With several processes, synchronise BatchNorm statistics (SyncBatchNorm; default: on GPUs only).",
        show_default=False,
    ),
]


class ConsoleObserver(TrainingObserver):
    """Shows progress bars of the decoded cache's filling, of the whole run and of the epoch (loss, images/s, time
    left) on stderr, what the run is expected to take once a few steps are timed, and one summary line per epoch."""

    def __init__(self, input_size: int) -> None:
        self.input_size = input_size
        self.progress: Progress | None = None
        self.task: Any = None
        self.run_task: Any = None
        self.validation: Any = None
        self.latest: RunProgress | None = None
        self.told = 0  # the estimate printed: 0 none yet, 1 one without a timed validation, 2 one with

    def cache_progress(self, done: int, total: int) -> None:
        if done == 0:
            err_console.print(
                f"decoding {total} training images at {self.input_size} px into the decoded cache first (once per "
                "input size; not counted in the expected time or the budget)"
            )
            if err_console.is_terminal:
                self.progress = task_progress()
                self.progress.start()
                self.task = self.progress.add_task("decoding", total=total, status="")
        elif self.progress is not None:
            self.progress.update(self.task, completed=done)

    def epoch_started(self, epoch: int, epochs: int, steps: int) -> None:
        self.close()
        if not err_console.is_terminal:  # logs and pipes get the estimate and the per-epoch lines only
            return
        self.progress = task_progress()
        self.progress.start()
        self.run_task = self.progress.add_task("run", total=1.0, status="", count=f"epoch {epoch}/{epochs}")
        if self.latest is not None:
            self.progress.update(self.run_task, **_run_bar(self.latest))
        self.task = self.progress.add_task(f"epoch {epoch}/{epochs}", total=steps, status="")
        self.validation = None

    def step_done(self, step: int, loss: float, images_per_second: float) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=step, status=f"loss {loss:.4f}  {images_per_second:.1f} img/s")

    def run_progress(self, progress: RunProgress) -> None:
        self.latest = progress
        if self.progress is not None:
            self.progress.update(self.run_task, **_run_bar(progress))
        stage = 2 if progress.validation_seconds is not None else 1
        if progress.seconds_left is not None and stage > self.told:
            self.told = stage
            err_console.print(_expectation(progress, self.input_size))

    def validation_progress(self, done: int, total: int) -> None:
        if self.progress is None:
            return
        if self.validation is None:
            self.validation = self.progress.add_task("validation", total=total, status="")
        self.progress.update(self.validation, completed=done)

    def epoch_done(self, record: EpochRecord) -> None:
        self.close()
        best = " [green]best[/]" if record.best else ""
        console.print(
            f"epoch {record.epoch:>3}  train loss {record.train_loss:.4f}  val Dice {record.val_dice:.4f}  "
            f"val mIoU {record.val_iou:.4f}  lr {record.lr:.1e}  {record.seconds:.1f}s "
            f"({record.images_per_second:.1f} img/s){best}"
        )

    def close(self) -> None:
        """Remove the bars (before printing, and when training stops for any reason)."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _run_bar(progress: RunProgress) -> dict[str, Any]:
    """The whole run's bar: done so far, the epoch, time taken (of the budget) and expected time left."""
    elapsed = format_duration(progress.elapsed)
    left = progress.seconds_left
    return {
        "completed": progress.fraction,
        "count": f"epoch {progress.epoch}/{progress.epochs}",
        "elapsed": elapsed if progress.budget is None else f"{elapsed} of {format_duration(progress.budget)}",
        "left": "-:--" if left is None else f"~{format_duration(left)} left",
    }


def _expectation(progress: RunProgress, input_size: int) -> str:
    """What the whole run is expected to take on this machine, measured on its first steps, and how to bound it."""
    epoch_seconds = progress.steps * (progress.step_seconds or 0.0)
    validation = progress.validation_seconds
    per_epoch = f"on this machine: {format_duration(epoch_seconds)} of training an epoch" + (
        f" and {format_duration(validation)} of validation" if validation is not None else ", plus validation"
    )
    left = progress.seconds_left or 0.0
    if progress.budget_binds:
        budget = progress.budget or 0.0
        per_epoch_seconds = max(epoch_seconds + (validation or 0.0), 1e-9)
        epochs = progress.epoch - 1 + progress.step / progress.steps + left / per_epoch_seconds
        return (
            f"[bold]expected[/]: the {format_duration(budget)} budget ends this run after about {epochs:.1f} of up to "
            f"{progress.epochs} epochs ({per_epoch})"
        )
    smaller = f" or a smaller --input-size ({input_size // 2}: about 4x faster)" if input_size >= 64 else ""
    return (
        f"[bold]expected[/]: about {format_duration(left)} more for up to {progress.epochs} epochs ({per_epoch}; "
        f"early stopping may end it sooner). Bound it with --max-time (e.g. --max-time 30m){smaller}"
    )


@contextlib.contextmanager
def _bar(description: str, total: int) -> Iterator[Callable[[int, int], None] | None]:
    """A ``progress(done, total)`` callback drawing a bar on a terminal; None for logs and pipes."""
    if not err_console.is_terminal:
        yield None
        return
    with task_progress() as progress:
        task = progress.add_task(description, total=total, status="")
        yield lambda done, _total: progress.update(task, completed=done)


def _announce(plan: RunPlan, trainer: Trainer) -> None:
    config, dataset, split = plan.config, plan.dataset, plan.split
    if dataset.is_synthetic:
        err_console.print(
            "[yellow]No --data given: training on the built-in SYNTHETIC polyp set[/] "
            f"({len(dataset.names)} generated images; settings scaled down for it). Scores on it say the "
            "pipeline works, not how well the model segments real polyps. For real results get Kvasir-SEG "
            "(https://datasets.simula.no/kvasir-seg/) and pass [bold]--data PATH/kvasir-seg[/] "
            "(a folder with images/ and masks/, or the zip)."
        )
    parameters = sum(p.numel() for p in trainer.model.parameters())
    action = f"resuming {plan.run.name} after epoch {trainer.epoch}" if plan.resume_from else plan.run.name
    console.print(
        f"[bold]{escape(action)}[/]: {escape(config.model)} ({parameters:,} parameters"
        f"{', ' + escape(str(config.options)) if config.options else ''}) on {escape(dataset.description)}, "
        f"split {split.name} ({len(split.train)} train / {len(split.val)} val), input {config.input_size}, "
        f"batch {config.batch_size}, lr {config.lr:g}, up to {config.epochs} epochs"
        + (f" or {format_duration(config.max_time)} (lr cosine to the budget)" if config.max_time is not None else "")
        + (f", EMA of weights (decay {config.ema_decay:g})" if config.average == "ema" else "")
        + f", {trainer.device} {trainer.precision}, seed {config.seed}"
        + (f", {trainer.processes} processes (batch {trainer.batch_size} each)" if trainer.processes > 1 else "")
    )
    if trainer.pretrained_report is not None:
        console.print(f"pretrained {escape(str(config.pretrained))}: {trainer.pretrained_report.summary()}")


def _interrupted(command: str, plan: RunPlan, trainer: Trainer) -> None:
    last = plan.run.last
    if trainer.epoch == 0:
        err_console.print(f"[yellow]interrupted[/] before the first epoch ended; nothing to resume in {plan.run.path}")
        return
    where = (
        "after training, while scoring"
        if trainer.epoch >= plan.config.epochs
        or trainer.stopper.should_stop
        or trainer.budget.exhausted(trainer.budget.elapsed())
        else f"during epoch {trainer.epoch + 1}"
    )
    err_console.print(
        f"[yellow]interrupted[/] {where}; {last} holds epoch {trainer.epoch}. "
        f"Resume (or finish) with: [bold]medico {command} {escape(plan.config.model)} --resume {plan.run.name}[/]"
    )


def _print_outcome(config: RunConfig, result: TrainingResult, outcome: RunOutcome) -> None:
    scores = outcome.evaluation.summary
    epochs = len(result.history)
    stop = f"{epochs} epoch{'' if epochs == 1 else 's'}"
    if result.stopped_by == STOP_BUDGET:
        budget, taken = format_duration(result.budget or 0.0), format_duration(result.elapsed)
        stop += f", stopped on the {budget} budget after {taken}"
    elif result.stopped_early:
        stop += ", stopped early"
    console.print(
        f"best epoch {result.best_epoch} ({stop}): val Dice {scores['dice']:.4f} ± {scores['dice_std']:.4f}, "
        f"mIoU {scores['iou']:.4f} ± {scores['iou_std']:.4f} over {scores['n_images']} images at their "
        "original resolution"
        + ("" if result.precision == MASK_PRECISION else
           f", in {MASK_PRECISION} as submissions are written (the epochs above validated in {result.precision})")
    )
    if outcome.speed is not None:
        speed = outcome.speed
        console.print(
            f"model FPS {speed.fps:.1f} (batch {speed.batch_size}, {speed.input_size}x{speed.input_size}, "
            f"forward only, {escape(speed.device)}, {speed.precision})"
        )
    run = RunFolder(result.run_dir)
    files = ", ".join(path.name for path in (run.summary, run.history, run.training_curve, run.per_image))
    console.print(f"record: {escape(str(run.path))}/ ({files})")
    if outcome.entry is not None:
        rows = leaderboard_rows(LeaderboardStore(), task="segmentation", split="val", view="all")
        mine = [row for row in rows if row.entry.sha256 == outcome.entry.sha256]
        stored = "added" if outcome.entry_id is not None else "already stored (same best.pt)"
        peers = sum(row.group == mine[0].group for row in rows)  # ranked only among runs on the same data
        console.print(
            f"leaderboard ({stored} for team {escape(outcome.entry.team)}{_team_origin(config)}; rank {mine[0].rank} "
            f"of {peers} runs, {escape(mine[0].group)}):"
        )
        for table in leaderboard_tables(mine, "segmentation", width=console.width):
            console.print(table)


def _team_origin(config: RunConfig) -> str:
    """Where the run's team came from, when not from --team, and how to name one when nobody did."""
    origin = config.sources.get("team") or default_team().origin  # a config stored before it held its team's origin
    if origin in UNNAMED:
        return f", {origin}: --team NAME or {TEAM_VARIABLE}=NAME names another"
    return "" if origin.startswith(COMMAND_LINE) else f", from {escape(origin)}"


def execute(
    command: str,
    model: str,
    given: RunOptions,
    *,
    resume: str | None,
    measure_speed: bool,
    leaderboard: bool,
    sync_bn: bool | None = None,
) -> None:
    """Plan, train and finish a run, printing progress; shared by ``medico run`` and ``medico train``."""
    plan = plan_run(model, given, resume=resume)
    _train_and_finish(command, plan, measure_speed=measure_speed, leaderboard=leaderboard, sync_bn=sync_bn)


def execute_distributed(nproc: int | None, fn: Callable[..., None], *args: Any, **kwargs: Any) -> None:
    """``fn(*args, **kwargs)`` here, in each process torchrun started, or in ``nproc`` processes spawned here; only
    rank 0 prints."""
    run_distributed(nproc, fn, *args, worker_setup=_quiet, **kwargs)


def _quiet() -> None:
    """The consoles of a process other than rank 0 print nothing (one process reports for all)."""
    console.quiet = err_console.quiet = True


def _train_and_finish(
    command: str, plan: RunPlan, *, measure_speed: bool, leaderboard: bool, sync_bn: bool | None = None
) -> RunOutcome:
    """Train a planned run, score, time and rank it, printing progress and the outcome."""
    trainer = make_trainer(plan, sync_bn=sync_bn)
    _announce(plan, trainer)
    observer = ConsoleObserver(plan.config.input_size)
    try:
        with run_tracking(plan) as tracker:
            result = train_run(plan, trainer, observer, tracker)
            with _bar("scoring best.pt", len(plan.split.val)) as progress:
                outcome = finish_run(
                    plan,
                    result,
                    measure_speed=measure_speed,
                    leaderboard=leaderboard,
                    progress=progress,
                    tracker=tracker,
                )
    except KeyboardInterrupt:
        observer.close()
        _interrupted(command, plan, trainer)
        raise typer.Exit(130) from None
    finally:
        observer.close()
    _print_outcome(plan.config, result, outcome)
    return outcome


def execute_sweep(
    model: str,
    given: RunOptions,
    *,
    folds: int | None,
    seeds: str | None,
    measure_speed: bool,
    leaderboard: bool,
) -> None:
    """One run per fold and seed, then the sweep summary (written and shown); fold runs stay off the leaderboard,
    since they are scored on training images rather than the validation split."""
    summary, folder = run_sweep(
        model,
        given,
        folds=folds,
        seeds=parse_seeds(seeds) if seeds is not None else None,
        train=lambda plan, ranked: _train_and_finish(
            "run", plan, measure_speed=measure_speed, leaderboard=leaderboard and ranked
        ),
        starting=lambda index, count, member: console.rule(f"sweep run {index}/{count}: {member.label}"),
    )
    console.print(_sweep_table(summary, title=f"sweep {folder.name}: {escape(model)}"))
    if folds:
        console.print("fold runs are scored on held-out training images, so they are not on the leaderboard")
    console.print(f"sweep record: {escape(str(folder))}/ (summary.json, per_image.csv)")


def _sweep_table(summary: SweepSummary, title: str = "sweep") -> Table:
    """One row per run, then the mean ± std over runs, the mean over images and its bootstrap interval."""
    table = Table(title=title, title_justify="left")
    table.add_column("run", no_wrap=True)
    for header in ("fold", "seed", "images", *(SWEEP_HEADERS[m] for m in SWEEP_METRICS)):
        table.add_column(header, justify="right", no_wrap=True)
    for row in summary.runs:
        fold = "-" if row["fold"] is None else str(row["fold"])
        scores = [f"{row[m]:.4f}" for m in SWEEP_METRICS]
        table.add_row(row["run"], fold, str(row["seed"]), str(row["n_images"]), *scores)
    stats = [summary.metrics[m] for m in SWEEP_METRICS]
    percent = f"{summary.confidence:.0%}"
    table.add_section()
    table.add_row("mean ± std", "", "", "", *(f"{s['mean']:.4f} ± {s['std']:.4f}" for s in stats))
    images = str(len(summary.per_image))
    table.add_row("image mean", "", "", images, *(f"{s['image_mean']:.4f}" for s in stats), style="bold")
    table.add_row(f"{percent} CI", "", "", images, *(f"[{s['ci_low']:.4f}, {s['ci_high']:.4f}]" for s in stats))
    table.caption = (
        f"mean ± std: over the runs' means (sample std); image mean and {percent} CI: bootstrap over images of each "
        "image's score averaged over the runs that scored it"
    )
    return table


def run(
    model: Annotated[str, typer.Argument(help="Plugin name (see `medico models`) or path/to/file.py:builder.")],
    data: Data = None,
    split: SplitName = None,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    input_size: InputSize = None,
    lr: Lr = None,
    max_time: MaxTime = None,
    average: Average = None,
    ema_decay: EmaDecay = None,
    seed: Seed = None,
    pretrained: Pretrained = None,
    device: Device = None,
    precision: PrecisionOption = None,
    workers: Workers = None,
    tracker: TrackerOption = None,
    config: ConfigFile = None,
    resume: Resume = None,
    name: Name = None,
    option: Options = None,
    team: Annotated[
        str | None, typer.Option("--team", help="Leaderboard team (default: $MEDICO_TEAM, else your login name).")
    ] = None,
    no_leaderboard: Annotated[
        bool, typer.Option("--no-leaderboard", help="Do not add the result to the leaderboard.")
    ] = False,
    nproc: NProc = None,
    sync_bn: SyncBn = None,
    folds: Annotated[
        int | None,
        typer.Option("--folds", help="K-fold cross-validation over the training split: one run per fold (seeded)."),
    ] = None,
    seeds: Annotated[
        str | None, typer.Option("--seeds", help="One run per seed, e.g. 1,2,3 (with --folds: per fold and seed).")
    ] = None,
) -> None:
    """Train MODEL, score its best checkpoint on validation, measure FPS, record the run, show its leaderboard row.

    Without --data it trains on the built-in synthetic set (announced), so it works on a fresh machine.
    Settings: plugin defaults, then baselines/MODEL.toml, then --config, then these options.
    With --nproc N (or under torchrun) N processes train together; --batch-size is split evenly over them.
    With --folds or --seeds: one run per fold and seed, and a summary (mean, std, 95% bootstrap interval over
    images) in runs/sweeps/.
    """
    given = RunOptions.from_command_line(
        option,
        data=data,
        split=split,
        epochs=epochs,
        batch_size=batch_size,
        input_size=input_size,
        lr=lr,
        max_time=max_time,
        average=average,
        ema_decay=ema_decay,
        seed=seed,
        pretrained=pretrained,
        device=device,
        precision=precision,
        workers=workers,
        team=team,
        name=name,
        tracker=tracker,
        config_file=config,
    )
    if folds is not None or seeds is not None:
        if resume is not None:
            raise ConfigError("--resume continues one run: it cannot be given with --folds or --seeds")
        if (nproc or 1) > 1 or launched_by_torchrun():
            raise DistributedError("--folds and --seeds run on one process; leave out --nproc and torchrun")
        execute_sweep(
            model,
            given,
            folds=folds,
            seeds=seeds,
            measure_speed=True,
            leaderboard=not no_leaderboard,
        )
        return
    execute_distributed(
        nproc,
        execute,
        "run",
        model,
        given,
        resume=resume,
        measure_speed=True,
        leaderboard=not no_leaderboard,
        sync_bn=sync_bn,
    )
