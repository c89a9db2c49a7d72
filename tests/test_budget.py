"""Training within a time budget and with weight averaging: the budget ends the run and its lr schedule, the run says
so, the averaged weights are the ones validated and saved, and --resume goes on with both. Time is a fake clock that
each training step moves on, so nothing sleeps and every number is exact."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from medico.cli import app
from medico.data import loader
from medico.data.splits import random_split
from medico.data.synthetic import SyntheticDataset
from medico.engine.averaging import WeightAverage
from medico.engine.budget import cosine_lr, format_duration, parse_duration
from medico.engine.training import STOP_BUDGET, RunProgress, Trainer, TrainingObserver
from medico.models.unet import unet
from medico.runs.checkpoint import CheckpointError, load_checkpoint
from medico.runs.config import ConfigError, RunConfig, RunOptions, check_setting

STEP_SECONDS = 10.0


class FakeClock:
    """A clock that stands still until told to move."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Steps(TrainingObserver):
    """Moves the clock on by STEP_SECONDS per training step and records the lr each step trained with."""

    def __init__(self, clock: FakeClock, trainer: Trainer) -> None:
        self.clock, self.trainer = clock, trainer
        self.lrs: list[float] = []
        self.progress: list[RunProgress] = []

    def step_done(self, step: int, loss: float, images_per_second: float) -> None:
        self.lrs.append(self.trainer.optimizer.param_groups[0]["lr"])
        self.clock.now += STEP_SECONDS

    def run_progress(self, progress: RunProgress) -> None:
        self.progress.append(progress)


def tiny_config(**changes: object) -> RunConfig:
    """A 4-feature U-Net at 32 px (2 steps an epoch: 19 images, batch 8, the last partial batch dropped), never
    stopping early."""
    values = dict(
        model="unet", options={"init_features": 4}, input_size=32, batch_size=8, epochs=50, lr=1e-3, min_lr=1e-5,
        early_stopping=0,
    )
    return RunConfig(**{**values, **changes})


@pytest.fixture(scope="module")
def data() -> tuple[SyntheticDataset, object]:
    dataset = SyntheticDataset(seed=0, count=24)
    return dataset, random_split(dataset.names, seed=0)


def train(config: RunConfig, data: tuple, folder: Path, resume: Path | None = None) -> tuple[Trainer, Steps, object]:
    clock = FakeClock()
    trainer = Trainer(config, *data, folder, clock=clock, resuming=resume is not None)
    if resume is not None:
        trainer.resume(load_checkpoint(resume))
    steps = Steps(clock, trainer)
    return trainer, steps, trainer.fit(steps)


@pytest.mark.parametrize(
    ("text", "seconds"), [("30m", 1800), ("90s", 90), ("1h30m", 5400), ("2.5h", 9000), ("1h2m3s", 3723), ("600", 600)]
)
def test_durations_are_read_as_people_write_them(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert check_setting("max_time", text) == seconds


@pytest.mark.parametrize("text", ["", "m", "30x", "5 minutes", "1m1h", "30mm", "-5m", "0s", "0", "inf", "nan", "1e9"])
def test_a_duration_that_is_not_one_is_refused_naming_the_option(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^--max-time ") as refused:
        check_setting("max_time", text)
    assert "\n" not in str(refused.value)


def test_a_bad_budget_on_the_command_line_is_one_line_and_no_run(workspace: Path) -> None:
    result = CliRunner().invoke(app, ["train", "unet", "--max-time", "half an hour"], env={"COLUMNS": "10000"})
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--max-time" in errors[0] and "30m" in errors[0], result.output
    assert not (workspace / "runs").exists() or not any((workspace / "runs").iterdir())


def test_durations_are_shown_shortly() -> None:
    assert [format_duration(s) for s in (0.4, 45, 185, 7800)] == ["0s", "45s", "3m05s", "2h10m"]


def test_the_budget_stops_training_and_the_lr_reaches_its_end_at_the_budget(data, workspace: Path) -> None:
    config = tiny_config(max_time=90.0)
    trainer, steps, result = train(config, data, workspace / "run")
    assert result.stopped_by == STOP_BUDGET and result.stopped_early
    assert len(steps.lrs) == 9  # 9 steps of 10 s fill the budget exactly (validation takes no time here)
    assert result.elapsed == pytest.approx(90.0)
    assert len(result.history) == 5  # four full epochs of two steps, and one cut short after a step
    assert steps.lrs[0] == pytest.approx(config.lr, rel=0.01)
    assert steps.lrs[-1] == pytest.approx(config.min_lr)
    assert all(a >= b for a, b in zip(steps.lrs, steps.lrs[1:]))
    assert steps.lrs[4] == pytest.approx(cosine_lr(config.lr, config.min_lr, 50 / 90))  # the 5th step ends at 50 s
    assert steps.progress[-1].fraction == pytest.approx(1.0)
    assert load_checkpoint(result.last_checkpoint).training["budget"]["elapsed"] == pytest.approx(90.0)


def test_the_epoch_count_still_ends_a_budgeted_run_and_its_schedule_if_it_comes_first(data, workspace: Path) -> None:
    config = tiny_config(max_time=10_000.0, epochs=2)
    _, steps, result = train(config, data, workspace / "run")
    assert result.stopped_by == "epochs" and len(steps.lrs) == 4
    assert steps.lrs[-1] == pytest.approx(config.min_lr)
    assert steps.lrs[1] == pytest.approx(cosine_lr(config.lr, config.min_lr, 0.5))


def test_validation_time_counts_and_is_kept_free_at_the_end_of_the_budget(data, workspace: Path) -> None:
    """An epoch's validation and checkpoints took 25 s: the next epochs stop training 25 s before the budget."""
    clock = FakeClock()
    trainer = Trainer(tiny_config(max_time=200.0), *data, workspace / "run", clock=clock)
    steps = Steps(clock, trainer)
    validate = trainer.validate

    def slow_validation(observer: object = None) -> dict[str, float]:
        clock.now += 25.0
        return validate(observer)

    trainer.validate = slow_validation  # type: ignore[method-assign]
    result = trainer.fit(steps)
    assert result.stopped_by == STOP_BUDGET
    assert result.elapsed <= 200.0
    assert result.elapsed + STEP_SECONDS + 25.0 > 200.0  # no room was left for another step and validation
    assert steps.lrs[-1] == pytest.approx(trainer.config.min_lr)


class Filling(Steps):
    """Steps that also record, in order, the decoded cache's filling and the training steps."""

    def __init__(self, clock: FakeClock, trainer: Trainer) -> None:
        super().__init__(clock, trainer)
        self.events: list[tuple[str, int, int]] = []

    def cache_progress(self, done: int, total: int) -> None:
        self.events.append(("decoded", done, total))

    def step_done(self, step: int, loss: float, images_per_second: float) -> None:
        self.events.append(("step", step, 0))
        super().step_done(step, loss, images_per_second)


def test_a_first_epoch_on_an_empty_cache_is_timed_without_the_decoding(
    data, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decoding and resizing a pair takes 1000 s here (a full-size JPEG on a slow machine), a step 10 s: the empty cache
    is filled before the clock starts, so the expected time is measured on steps alone, and the budget is not spent."""
    clock = FakeClock()
    resize = loader.resize_image

    def slow_resize(image: object, size: int) -> object:
        clock.now += 1000.0
        return resize(image, size)

    monkeypatch.setattr(loader, "resize_image", slow_resize)
    trainer = Trainer(tiny_config(max_time=10_000.0, epochs=1), *data, workspace / "run", clock=clock)
    filling = Filling(clock, trainer)
    result = trainer.fit(filling)
    timed = [progress.step_seconds for progress in filling.progress if progress.step_seconds is not None]
    assert timed and set(timed) == {STEP_SECONDS}
    assert result.elapsed == pytest.approx(2 * STEP_SECONDS)
    train_images = len(trainer.train_set)
    decoded = [event for event in filling.events if event[0] == "decoded"]
    assert decoded == [("decoded", done, train_images) for done in range(train_images + 1)]
    assert filling.events[: len(decoded)] == decoded  # every pair decoded before the first step

    again = Filling(clock, Trainer(tiny_config(epochs=1), *data, workspace / "again", clock=clock))
    again.trainer.fit(again)
    assert [event for event in again.events if event[0] == "decoded"] == []  # filled once per input size


def test_without_a_budget_the_run_keeps_the_plateau_schedule(data, workspace: Path) -> None:
    _, steps, result = train(tiny_config(epochs=2), data, workspace / "run")
    assert result.stopped_by == "epochs" and not result.stopped_early
    assert set(steps.lrs) == {1e-3}
    assert steps.progress[-1].budget is None and steps.progress[-1].fraction == pytest.approx(1.0)


def test_the_expected_time_left_is_the_measured_steps_and_validations_or_the_budget_left() -> None:
    by_epochs = RunProgress(
        epoch=2, epochs=4, step=1, steps=10, fraction=0.3, elapsed=150, budget=None, step_seconds=5.0,
        validation_seconds=20.0,
    )
    assert by_epochs.seconds_left == 29 * 5.0 + 3 * 20.0 and not by_epochs.budget_binds
    by_budget = dataclasses.replace(by_epochs, budget=200.0)
    assert by_budget.seconds_left == 50.0 and by_budget.budget_binds
    assert dataclasses.replace(by_epochs, step_seconds=None).seconds_left is None


def test_a_budgeted_run_resumes_with_the_time_it_has_left(data, workspace: Path) -> None:
    folder = workspace / "run"
    _, _, first = train(tiny_config(max_time=60.0), data, folder)
    assert first.stopped_by == STOP_BUDGET and len(first.history) == 3

    _, again, same = train(tiny_config(max_time=60.0), data, folder, resume=first.last_checkpoint)
    assert same.stopped_by == STOP_BUDGET and again.lrs == [] and same.history == first.history

    config = tiny_config(max_time=120.0)
    _, more, longer = train(config, data, folder, resume=first.last_checkpoint)
    assert longer.stopped_by == STOP_BUDGET and len(more.lrs) == 6  # the 60 s left, at 10 s a step
    assert longer.elapsed == pytest.approx(120.0)
    assert [r.epoch for r in longer.history] == [1, 2, 3, 4, 5, 6]
    assert more.lrs[0] == pytest.approx(cosine_lr(config.lr, config.min_lr, 70 / 120))
    assert more.lrs[-1] == pytest.approx(config.min_lr)


def test_resume_may_change_the_budget_but_not_the_averaging() -> None:
    stored = RunConfig(model="unet", max_time=60.0)
    assert stored.with_resume_overrides(RunOptions(max_time="2m")).max_time == 120.0
    with pytest.raises(ConfigError, match="cannot change average"):
        stored.with_resume_overrides(RunOptions(average="ema"))


@pytest.mark.parametrize("elapsed", [-1.0, math.nan, "10", True])
def test_a_checkpoint_with_a_bad_budget_record_is_refused(data, workspace: Path, elapsed: object) -> None:
    _, _, result = train(tiny_config(max_time=30.0), data, workspace / "run")
    checkpoint = load_checkpoint(result.last_checkpoint)
    checkpoint.training["budget"]["elapsed"] = elapsed
    with pytest.raises(CheckpointError, match="training state cannot be restored"):
        Trainer(tiny_config(max_time=30.0), *data, workspace / "run", resuming=True).resume(checkpoint)


def test_the_weight_average_warms_up_and_averages_batchnorm_statistics() -> None:
    torch.manual_seed(0)
    model = unet(init_features=4)
    average = WeightAverage(model, decay=0.999)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.add_(1) if tensor.is_floating_point() else tensor.fill_(7)
    average.update(model)
    weight = 1 - 2 / 11  # the first update's decay: (1 + 1) / (10 + 1), not 0.999
    for key, value in average.module.state_dict().items():
        if value.is_floating_point():
            assert torch.allclose(value, start[key] + weight), key
        else:
            assert value.item() == 7, key  # BatchNorm's batch count is copied
    assert WeightAverage(model, 0.9).current_decay() == pytest.approx(2 / 11)
    average.updates = 10**6
    assert average.current_decay() == 0.999


def test_averaged_weights_are_validated_and_saved_and_the_trained_ones_kept_to_resume(data, workspace: Path) -> None:
    config = tiny_config(epochs=2, average="ema", ema_decay=0.9)
    trainer, _, result = train(config, data, workspace / "run")
    averaged = trainer.average.module.state_dict()
    trained = trainer.model.state_dict()
    assert any(not torch.equal(averaged[k], trained[k]) for k in trained)
    best, last = load_checkpoint(result.best_checkpoint), load_checkpoint(result.last_checkpoint)
    assert best.config["average"] == "ema" and best.config["ema_decay"] == 0.9
    for key in trained:
        assert torch.equal(last.model[key], averaged[key].cpu()), key
        assert torch.equal(last.training["weights"][key], trained[key].cpu()), key
    assert last.training["average_updates"] == 4

    resumed = Trainer(dataclasses.replace(config, epochs=3), *data, workspace / "run", resuming=True)
    resumed.resume(last)
    assert resumed.average.updates == 4
    for key in trained:
        assert torch.equal(resumed.average.module.state_dict()[key].cpu(), averaged[key].cpu()), key
        assert torch.equal(resumed.model.state_dict()[key].cpu(), trained[key].cpu()), key


def test_a_run_records_and_says_that_it_stopped_on_its_budget(small_data: Path) -> None:
    """A config file sets the budget and the averaging; the record and the console say what happened."""
    config = small_data / "budget.toml"
    config.write_text('max_time = "1s"\nearly_stopping = 0\naverage = "ema"\nepochs = 100000\n', encoding="utf-8")
    args = ["train", "unet", "--option", "init_features=4", "--input-size", "32", "--config", str(config)]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "10000"})
    assert result.exit_code == 0, result.output
    run = small_data / "runs" / "1-unet"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["training"]["stopped_by"] == "budget" and summary["training"]["max_time_seconds"] == 1.0
    assert summary["training"]["weight_average"] == "ema"
    recorded = json.loads((run / "config.json").read_text())
    assert recorded["max_time"] == 1.0 and recorded["average"] == "ema"
    assert "stopped on the 1s budget" in result.output
    assert "EMA of weights (decay 0.999)" in result.output


def test_a_run_says_what_it_is_expected_to_take_and_how_to_bound_it(small_data: Path) -> None:
    args = ["train", "unet", "--option", "init_features=4", "--input-size", "64", "--epochs", "2"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "10000"})
    assert result.exit_code == 0, result.output
    assert "expected: about" in result.output and "for up to 2 epochs (on this machine:" in result.output
    decoding = result.output.index("training images at 64 px into the decoded cache first")
    assert decoding < result.output.index("expected: about")
    assert "Bound it with --max-time" in result.output and "--input-size (32: about 4x faster)" in result.output
