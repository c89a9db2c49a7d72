"""``medico train MODEL``: the training part of ``medico run`` (no FPS measurement, no leaderboard entry)."""

from __future__ import annotations

from typing import Annotated

import typer

from medico.commands.run import (
    Average,
    BatchSize,
    ConfigFile,
    Data,
    Device,
    EmaDecay,
    Epochs,
    InputSize,
    Lr,
    MaxTime,
    Name,
    NProc,
    Options,
    PrecisionOption,
    Pretrained,
    Resume,
    Seed,
    SplitName,
    SyncBn,
    TrackerOption,
    Workers,
    execute,
    execute_distributed,
)
from medico.runs.config import RunOptions

__all__ = ["train"]


def train(
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
    nproc: NProc = None,
    sync_bn: SyncBn = None,
) -> None:
    """Train MODEL and record the run (checkpoints, history, curve, validation scores of the best checkpoint).

    The same settings as `medico run`, without the FPS measurement and the leaderboard entry.
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
        name=name,
        tracker=tracker,
        config_file=config,
    )
    execute_distributed(
        nproc, execute, "train", model, given, resume=resume, measure_speed=False, leaderboard=False, sync_bn=sync_bn
    )
