"""Training: the loss, early stopping, the NaN guard, seeded repeatability, resuming and pretrained weights."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from medico.data.splits import random_split
from medico.data.synthetic import SyntheticDataset
from medico.engine.losses import bce_dice_loss, soft_dice_loss
from medico.engine.training import (
    EarlyStopping,
    NonFiniteLossError,
    Trainer,
    TrainingObserver,
)
from medico.runs.checkpoint import load_checkpoint
from medico.runs.config import RunConfig
from medico.weights import WeightsError

NAN_MODEL = f"{Path(__file__).with_name('nan_model.py')}:nan_model"
LAYOUT_SPY = f"{Path(__file__).with_name('layout_spy_model.py')}:layout_spy"


def tiny_config(**changes: object) -> RunConfig:
    """A 4-feature U-Net at 32 px: an epoch on the small synthetic set takes about a second."""
    values = dict(model="unet", options={"init_features": 4}, input_size=32, batch_size=8, epochs=1, lr=1e-3)
    return RunConfig(**{**values, **changes})


@pytest.fixture(scope="module")
def small_data() -> tuple[SyntheticDataset, object]:
    """24 synthetic frames (19 train, 5 val), generated once for the module."""
    dataset = SyntheticDataset(seed=0, count=24)
    return dataset, random_split(dataset.names, seed=0)


def test_soft_dice_loss_is_the_per_image_formula_averaged_over_images() -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, 1, 5, 7)
    target = (torch.rand(3, 1, 5, 7) > 0.5).float()
    p = torch.sigmoid(logits)
    naive = []
    for i in range(3):
        y, q = target[i], p[i]
        naive.append(1 - 2 * (y * q).sum() / ((y**2).sum() + (q**2).sum() + 1e-6))
    assert soft_dice_loss(logits, target).item() == pytest.approx(torch.stack(naive).mean().item(), rel=1e-6)


def test_a_confident_correct_prediction_has_a_loss_near_zero_and_a_wrong_one_does_not() -> None:
    target = torch.zeros(2, 1, 8, 8)
    target[:, :, 2:6, 2:6] = 1
    right = (target * 2 - 1) * 30
    assert bce_dice_loss(right, target).item() < 1e-3
    assert bce_dice_loss(-right, target).item() > 2


def test_early_stopping_waits_for_its_patience_and_zero_never_stops() -> None:
    stopper = EarlyStopping(patience=2)
    assert [stopper.update(s) for s in (0.5, 0.6, 0.6, 0.55)] == [True, True, False, False]
    assert stopper.should_stop and stopper.best == 0.6
    never = EarlyStopping(patience=0)
    for score in (0.5, 0.1, 0.1, 0.1):
        never.update(score)
    assert not never.should_stop


def test_a_nan_loss_stops_training_naming_the_epoch_and_step(small_data, workspace: Path) -> None:
    dataset, split = small_data
    trainer = Trainer(tiny_config(model=NAN_MODEL, options={}), dataset, split, workspace / "run")
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at epoch 1, step 1 of \d+"):
        trainer.fit()
    assert not (workspace / "run" / "checkpoints" / "last.pt").exists()


@pytest.mark.parametrize(("name", "trains_in"), [("avx512", "NHWC"), ("avx2", "NCHW")])
def test_training_and_its_validation_keep_the_processors_training_layout(
    small_data, workspace: Path, monkeypatch: pytest.MonkeyPatch, name: str, trains_in: str
) -> None:
    """On an AVX2-only CPU training stays NCHW, validation included: a Predictor must not flip the weights to NHWC
    between epochs (which would leave later steps mixing layouts)."""
    monkeypatch.setenv("MEDICO_CPU_CLASS", name)
    dataset, split = small_data
    trainer = Trainer(tiny_config(model=LAYOUT_SPY, options={}, epochs=2), dataset, split, workspace / "run")
    trainer.fit()
    seen = trainer.model.seen
    assert {mode for mode, _, _ in seen} == {True, False}  # trained and validated
    assert set((batch, weights) for _, batch, weights in seen) == {(trains_in, trains_in)}


def test_losses_read_back_a_few_steps_at_a_time_give_the_same_history(small_data, workspace: Path) -> None:
    """As on a GPU: the epoch's loss is the same whether each step's loss is read back at once or later."""
    dataset, split = small_data
    config = tiny_config(batch_size=4, epochs=2)  # 4 steps per epoch
    every_step = Trainer(config, dataset, split, workspace / "every").fit()
    deferred = Trainer(config, dataset, split, workspace / "deferred")
    deferred.readback_every = 3  # one read of 3 losses, then one of the last step's
    steps: list[int] = []
    deferred_result = deferred.fit(_StepRecorder(steps))
    assert steps == [3, 4, 3, 4]
    for ours, theirs in zip(deferred_result.history, every_step.history):
        assert ours.train_loss == pytest.approx(theirs.train_loss, rel=1e-6)


def test_a_nan_found_in_a_later_read_back_still_names_its_own_step(small_data, workspace: Path) -> None:
    dataset, split = small_data
    trainer = Trainer(tiny_config(model=NAN_MODEL, options={}), dataset, split, workspace / "run")
    trainer.readback_every = 2
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at epoch 1, step 1 of \d+"):
        trainer.fit()


class _StepRecorder(TrainingObserver):
    def __init__(self, steps: list[int]) -> None:
        self.steps = steps

    def step_done(self, step: int, loss: float, images_per_second: float) -> None:
        self.steps.append(step)


def test_the_same_seed_gives_the_same_loss_history(small_data, workspace: Path) -> None:
    dataset, split = small_data
    runs = [Trainer(tiny_config(seed=3), dataset, split, workspace / f"run{i}").fit() for i in range(2)]
    losses = [[r.train_loss for r in run.history] for run in runs]
    assert losses[0] == losses[1]
    other = Trainer(tiny_config(seed=4), dataset, split, workspace / "other").fit()
    assert [r.train_loss for r in other.history] != losses[0]


def test_a_resumed_run_continues_from_its_last_epoch_as_if_never_stopped(small_data, workspace: Path) -> None:
    dataset, split = small_data
    straight = Trainer(tiny_config(epochs=2), dataset, split, workspace / "straight").fit()

    first = Trainer(tiny_config(epochs=1), dataset, split, workspace / "stopped").fit()
    last = load_checkpoint(first.last_checkpoint)
    assert last.training["epoch"] == 1
    resumed = Trainer(tiny_config(epochs=2), dataset, split, workspace / "stopped")
    resumed.resume(last)
    assert resumed.epoch == 1
    result = resumed.fit()

    assert [r.epoch for r in result.history] == [1, 2]
    strip = lambda rows: [dataclasses.replace(r, seconds=0.0, images_per_second=0.0) for r in rows]  # noqa: E731
    assert strip(result.history) == strip(straight.history)
    assert load_checkpoint(result.last_checkpoint).training["epoch"] == 2


def test_checkpoints_hold_what_is_needed_to_rebuild_and_rank_the_model(small_data, workspace: Path) -> None:
    dataset, split = small_data
    result = Trainer(tiny_config(epochs=2), dataset, split, workspace / "run").fit()
    best = load_checkpoint(result.best_checkpoint)
    assert best.model_spec == "unet" and best.model_options == {"init_features": 4} and best.input_size == 32
    assert best.metrics["epoch"] == result.best_epoch
    assert best.metrics["iou"] == max(r.val_iou for r in result.history)
    assert best.config["seed"] == 0
    assert best.build()(torch.zeros(1, 3, 32, 32)).shape == (1, 1, 32, 32)


def test_pretrained_weights_from_a_file_load_where_keys_match(small_data, workspace: Path) -> None:
    dataset, split = small_data
    source = Trainer(tiny_config(), dataset, split, workspace / "a")
    weights = workspace / "weights.pt"
    torch.save(source.model.state_dict(), weights)
    trainer = Trainer(tiny_config(model="attunet", pretrained=str(weights), seed=9), dataset, split, workspace / "b")
    report = trainer.pretrained_report
    assert report is not None and report.loaded and report.new  # the U-Net tensors load, the gates start fresh
    key = "encoder1.enc1conv1.weight"
    assert torch.equal(trainer.model.state_dict()[key], source.model.state_dict()[key])


def test_pretrained_weights_that_fit_nothing_are_refused(small_data, workspace: Path) -> None:
    dataset, split = small_data
    weights = workspace / "other.pt"
    torch.save({"something.else": torch.zeros(3)}, weights)
    with pytest.raises(WeightsError, match="no tensor of"):
        Trainer(tiny_config(pretrained=str(weights)), dataset, split, workspace / "run")
    with pytest.raises(WeightsError, match="not a named weight of model 'unet'.*brain-mri"):
        Trainer(tiny_config(pretrained="imagenet"), dataset, split, workspace / "run")


def test_fp16_training_scales_the_loss_and_a_resumed_run_keeps_the_scale(small_data, workspace: Path) -> None:
    """The path of GPUs without bf16: fp16 autocast with a GradScaler, whose state a checkpoint carries."""
    dataset, split = small_data
    trainer = Trainer(tiny_config(precision="fp16"), dataset, split, workspace / "run")
    result = trainer.fit()
    assert trainer.scaler.is_enabled() and result.precision == "fp16"
    assert all(math.isfinite(r.train_loss) for r in result.history)
    stored = load_checkpoint(result.last_checkpoint).training["scaler"]
    assert stored["_growth_tracker"] == len(trainer.loader)  # one unskipped step per batch so far
    resumed = Trainer(tiny_config(precision="fp16", epochs=2), dataset, split, workspace / "run")
    resumed.resume(load_checkpoint(result.last_checkpoint))
    assert resumed.scaler.state_dict() == stored
    assert not Trainer(tiny_config(), dataset, split, workspace / "bf16").scaler.is_enabled()


def test_a_bf16_run_resumes_in_fp16_with_a_fresh_loss_scaler(small_data, workspace: Path) -> None:
    """--resume may change the precision, e.g. onto an older GPU: the bf16 run saved no scaler state."""
    dataset, split = small_data
    first = Trainer(tiny_config(precision="bf16"), dataset, split, workspace / "run").fit()
    resumed = Trainer(tiny_config(precision="fp16", epochs=2), dataset, split, workspace / "run")
    resumed.resume(load_checkpoint(first.last_checkpoint))
    assert resumed.scaler.is_enabled() and resumed.epoch == 1
    assert [r.epoch for r in resumed.fit().history] == [1, 2]
