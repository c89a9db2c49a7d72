"""Issue 12, files: no command destroys a file it was not told to replace, writes anything but a regular file,
leaves half a set of files after a failure or a full disk, or keeps a killed writer's temporary forever; a full
disk, an unusable output path or a symbolic link loop in a dataset is one line of error, never a traceback."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner, Result

import medico
from medico.cli import app
from medico.files import write_atomic
from medico.models import unet
from medico.runs.checkpoint import Checkpoint, save_checkpoint

runner = CliRunner()
STEMS = ("a", "b", "c")
TINY = ["--option", "init_features=4", "--input-size", "32"]
SMALL_SYNTHETIC_COUNT = 8
"""Frames of the synthetic set `small_data` trains on: the fewest that still leave images to validate."""


def invoke(*args: object) -> Result:
    """Run the command line on a wide terminal, so that a one-line message stays on one line."""
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "10000"})


def refused(result: Result, *named: str) -> str:
    """Assert the command stopped with exactly one line of error (no traceback) naming each of ``named``."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code != 0, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and all(name in errors[0] for name in named), result.output
    return errors[0]


def leftovers(folder: Path) -> list[str]:
    """Every file and folder under ``folder``, relative, hidden ones (temporaries) included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def full_disk_after(monkeypatch: pytest.MonkeyPatch, writes: int) -> None:
    """Let ``writes`` calls of ``Path.write_bytes`` through, then fail every later one as a full disk does."""
    original, calls = Path.write_bytes, {"n": 0}

    def write_bytes(self: Path, data: bytes) -> int:
        calls["n"] += 1
        if calls["n"] > writes:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)


@pytest.fixture
def checkpoint(workspace: Path) -> Path:
    """A tiny untrained U-Net checkpoint (32 px)."""
    torch.manual_seed(0)
    model = unet(init_features=4)
    return save_checkpoint(
        workspace / "tiny.pt", Checkpoint("unet", {"init_features": 4}, 32, model.state_dict(), config={"seed": 0})
    )


def _images(folder: Path, suffix: str = ".png") -> Path:
    folder.mkdir(parents=True)
    for index, stem in enumerate(STEMS):
        pixels = np.random.default_rng(index).integers(0, 256, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{stem}{suffix}")
    return folder


@pytest.fixture
def images(workspace: Path) -> Path:
    """Three PNG images a.png, b.png, c.png."""
    return _images(workspace / "images")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# predict: never into the folder it reads, never over masks without --force, all masks or none


def test_predict_into_its_own_images_folder_is_refused_and_leaves_the_images_intact(checkpoint, images):
    before = _snapshot(images)
    refused(invoke("predict", checkpoint, images, "--out", images, "--device", "cpu"), "images folder")
    assert _snapshot(images) == before


def test_predict_into_the_images_folder_through_a_link_is_refused_too(checkpoint, images, workspace):
    (workspace / "link").symlink_to(images)
    before = _snapshot(images)
    refused(invoke("predict", checkpoint, images, "--out", workspace / "link", "--device", "cpu"), "images folder")
    assert _snapshot(images) == before


def test_predict_over_ground_truth_masks_is_refused_without_force_and_replaces_them_with_it(
    checkpoint, images, workspace
):
    truth = workspace / "truth"
    truth.mkdir()
    for stem in STEMS:
        Image.fromarray(np.full((40, 48), 255, np.uint8)).save(truth / f"{stem}.png")
    before = _snapshot(truth)
    refused(invoke("predict", checkpoint, images, "--out", truth, "--device", "cpu"), "a.png", "--force")
    assert _snapshot(truth) == before

    replaced = invoke("predict", checkpoint, images, "--out", truth, "--device", "cpu", "--force")
    assert replaced.exit_code == 0, replaced.output
    after = _snapshot(truth)
    assert sorted(after) == [f"{stem}.png" for stem in STEMS] and after != before


def test_predict_with_out_naming_a_file_is_one_line(checkpoint, images, workspace):
    notes = workspace / "notes.txt"
    notes.write_text("keep me")
    refused(invoke("predict", checkpoint, images, "--out", notes, "--device", "cpu"), "notes.txt", "not a folder")
    assert notes.read_text() == "keep me"


def test_predict_that_fails_half_way_on_a_bad_image_leaves_no_masks(checkpoint, images, workspace):
    (images / "b.png").write_bytes(b"not a png at all")
    out = workspace / "masks"
    refused(invoke("predict", checkpoint, images, "--out", out, "--device", "cpu", "--batch-size", "1"), "b.png")
    assert not out.exists() or leftovers(out) == []


def test_predict_on_a_full_disk_is_one_line_and_leaves_no_masks(checkpoint, images, workspace, monkeypatch):
    out = workspace / "masks"
    full_disk_after(monkeypatch, writes=1)
    line = refused(invoke("predict", checkpoint, images, "--out", out, "--device", "cpu", "--batch-size", "1"))
    assert "disk full" in line and "masks" in line
    assert not out.exists() or leftovers(out) == []


# exports and other named outputs: regular files only, never over a file without --force


def _char_device(tmp_path: Path) -> Path:
    """A character device to aim at: a private null device where we may make one (root), else /dev/null, which
    only root could replace (so a broken medico cannot harm it in this test)."""
    if os.geteuid() != 0:
        return Path("/dev/null")
    device = tmp_path / "null-device"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except OSError as error:
        pytest.skip(f"cannot make a character device here: {error}")
    return device


def _fifo(tmp_path: Path) -> Path:
    os.mkfifo(tmp_path / "board.csv")
    return tmp_path / "board.csv"


def _link_outside(tmp_path: Path) -> Path:
    outside = tmp_path / "elsewhere" / "notes.csv"
    outside.parent.mkdir()
    outside.write_text("someone else's file\n")
    (tmp_path / "board.csv").symlink_to(outside)
    return tmp_path / "board.csv"


def _folder(tmp_path: Path) -> Path:
    (tmp_path / "board.csv").mkdir()
    return tmp_path / "board.csv"


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (_fifo, "named pipe"),
        (_link_outside, "symbolic link"),
        (_folder, "a folder"),
        (_char_device, "character device"),
    ],
    ids=["fifo", "symlink", "folder", "char-device"],
)
def test_an_export_onto_anything_but_a_regular_file_is_refused_and_leaves_it_alone(make, kind, workspace):
    target = make(workspace)
    before = os.lstat(target)
    pointed = (target.resolve().read_text(), os.readlink(target)) if target.is_symlink() else None
    refused(invoke("leaderboard", "--format", "csv", "--output", target), str(target), kind)
    after = os.lstat(target)
    assert (stat.S_IFMT(after.st_mode), after.st_ino, after.st_rdev) == (
        stat.S_IFMT(before.st_mode), before.st_ino, before.st_rdev
    )
    if pointed is not None:
        assert (target.resolve().read_text(), os.readlink(target)) == pointed


def test_an_export_to_dev_null_is_refused_and_dev_null_stays_a_device(workspace):
    from medico.files import OutputError, check_target  # imported here: a medico without them fails this test alone

    with pytest.raises(OutputError):  # never hand /dev/null to a medico (run as root) that would replace it
        check_target(Path("/dev/null"), replace=True)
    refused(invoke("leaderboard", "--format", "csv", "--output", "/dev/null"), "/dev/null", "character device")
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)


def test_an_export_over_an_existing_file_needs_force(workspace):
    target = workspace / "board.csv"
    target.write_text("my own notes\n")
    refused(invoke("leaderboard", "--format", "csv", "--output", target), "board.csv", "--force")
    assert target.read_text() == "my own notes\n"
    assert invoke("leaderboard", "--format", "csv", "--output", target, "--force").exit_code == 0
    assert target.read_text() != "my own notes\n"


def test_an_overlay_over_an_existing_file_needs_force(workspace):
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(workspace / "image.png")
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(workspace / "truth.png")
    (workspace / "photo.png").write_bytes(b"a holiday photo")
    refused(invoke("overlay", "image.png", "truth.png", "--out", "photo.png"), "photo.png", "--force")
    assert (workspace / "photo.png").read_bytes() == b"a holiday photo"
    assert invoke("overlay", "image.png", "truth.png", "--out", "photo.png", "--force").exit_code == 0


@pytest.fixture
def unwritable_folder(workspace: Path) -> Iterator[Path]:
    """A folder medico may not create files in: read-only for a user; for root, who ignores permission bits,
    sysfs (which refuses new files even to root)."""
    if os.geteuid() != 0:
        folder = workspace / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
    elif Path("/sys/kernel").is_dir():
        yield Path("/sys")
    else:
        pytest.skip("running as root without sysfs: no folder refuses new files")


def test_an_export_into_a_folder_it_cannot_write_is_one_line(unwritable_folder):
    target = unwritable_folder / "medico-board.csv"
    refused(invoke("leaderboard", "--format", "csv", "--output", target), str(unwritable_folder))
    assert not target.exists()


def test_an_export_below_a_file_is_one_line(workspace):
    (workspace / "notes.txt").write_text("keep me")
    refused(invoke("leaderboard", "--format", "csv", "--output", "notes.txt/board.csv"), "notes.txt", "not a folder")
    assert (workspace / "notes.txt").read_text() == "keep me"


# a full disk anywhere: one line, nothing half-written


def test_an_export_on_a_full_disk_is_one_line_and_leaves_nothing(workspace, monkeypatch):
    out = workspace / "exports"
    out.mkdir()
    full_disk_after(monkeypatch, writes=0)
    line = refused(invoke("leaderboard", "--format", "csv", "--output", out / "board.csv"))
    assert "disk full" in line and "board.csv" in line
    assert leftovers(out) == []


def test_a_submission_on_a_full_disk_is_one_line_and_leaves_no_archive(checkpoint, images, workspace, monkeypatch):
    full_disk_after(monkeypatch, writes=0)
    result = invoke(
        "submit", "--team", "alice", "--checkpoint", checkpoint, "--images", images, "--out", workspace / "subs",
        "--device", "cpu",
    )
    line = refused(result)
    assert "disk full" in line and "alice_task1_run1.zip" in line
    assert not (workspace / "subs").exists() or leftovers(workspace / "subs") in ([], ["alice"])


def test_a_disk_filled_between_archive_and_manifest_leaves_no_run_and_the_rerun_writes_it(
    checkpoint, images, workspace, monkeypatch
):
    """The archive without its manifest would be a run of its own: the rerun, once space is freed, was refused as
    'these masks again' and --force spent a second run on them."""
    command = ["submit", "--team", "alice", "--checkpoint", checkpoint, "--images", images, "--out", workspace / "subs",
               "--device", "cpu"]
    with monkeypatch.context() as full:
        full_disk_after(full, writes=1)  # the archive, then the disk is full
        line = refused(invoke(*command))
    assert "disk full" in line and "alice_task1_run1.json" in line
    assert leftovers(workspace / "subs") == ["alice"]
    assert invoke(*command).exit_code == 0
    assert leftovers(workspace / "subs") == ["alice", "alice/alice_task1_run1.json", "alice/alice_task1_run1.zip"]


def test_training_on_a_full_disk_stops_with_one_line_and_no_temporary(small_data, monkeypatch):
    def full_disk_save(obj: object, file: object, *args: object, **kwargs: object) -> None:
        if hasattr(file, "write"):
            file.write(b"half a checkpoint")
        else:
            Path(file).write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk_save)
    line = refused(invoke("train", "unet", *TINY, "--epochs", "1", "--workers", "0"))
    assert "disk full" in line and ".pt" in line
    assert not [name for name in leftovers(small_data / "runs") if name.endswith(".tmp")]


# a writer killed mid-write: its temporary goes with the next write into that folder


def _python(code: str, **kwargs: object) -> subprocess.Popen:
    """Run ``code`` in a new Python process that imports this medico."""
    env = {**os.environ, "PYTHONPATH": str(Path(medico.__file__).parents[1])}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, text=True, **kwargs)


def test_a_killed_writers_temporary_is_removed_by_the_next_write_and_a_live_ones_is_kept(tmp_path):
    writer = _python(
        f"""
        import time
        from pathlib import Path
        from medico.files import atomic_path
        with atomic_path(Path({str(tmp_path)!r}) / "best.pt") as tmp:
            tmp.write_bytes(b"half a checkpoint")
            print("writing", flush=True)
            time.sleep(60)
        """,
        stdout=subprocess.PIPE,
    )
    try:
        assert writer.stdout.readline().strip() == "writing"
        write_atomic(tmp_path / "history.csv", "epoch\n")
        temporaries = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        assert temporaries, "a running writer's temporary is kept"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    next_run = _python(f"from medico.files import write_atomic; write_atomic({str(tmp_path / 'last.json')!r}, '{{}}')")
    assert next_run.wait(timeout=60) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.csv", "last.json"]


# symbolic link loops in a dataset: one line naming the link


def _dataset_with_loop(root: Path, folder: str) -> Path:
    _images(root / "images", ".jpg")
    (root / "masks").mkdir()
    for stem in STEMS:
        Image.fromarray(np.zeros((40, 48), np.uint8)).save(root / "masks" / f"{stem}.jpg")
    (root / folder / "loop.jpg").symlink_to("loop.jpg")
    return root / folder / "loop.jpg"


@pytest.mark.parametrize("folder", ["images", "masks"])
def test_a_symlink_loop_in_a_dataset_is_one_line_in_data_check(folder, workspace):
    loop = _dataset_with_loop(workspace / "kvasir", folder)
    refused(invoke("data", "check", workspace / "kvasir"), str(loop), "symbolic link loop")


def test_a_symlink_loop_in_a_dataset_is_one_line_in_run(workspace):
    loop = _dataset_with_loop(workspace / "kvasir", "images")
    refused(invoke("run", "unet", *TINY, "--data", workspace / "kvasir", "--epochs", "1"), str(loop))


def test_a_dataset_path_that_loops_is_named_as_a_link(workspace):
    (workspace / "data").symlink_to("data")
    refused(invoke("data", "check", workspace / "data"), "symbolic link")


def test_a_symlink_loop_among_images_to_predict_is_named_not_skipped(checkpoint, images, workspace):
    (images / "loop.png").symlink_to("loop.png")
    refused(invoke("predict", checkpoint, images, "--out", workspace / "masks", "--device", "cpu"), "loop.png")


@pytest.mark.parametrize("folder", ["evaluations", "overlays", "tensorboard"])
def test_a_run_whose_own_folder_is_a_link_is_refused_and_nothing_is_written_through_it(
    run_dir: Path, workspace: Path, folder: str
) -> None:
    elsewhere = workspace / "elsewhere"
    elsewhere.mkdir()
    (run_dir / "per_image.csv").write_text("name,iou,dice\nsynthetic-0000,0.5,0.6\n")
    (run_dir / folder).symlink_to(elsewhere, target_is_directory=True)
    for args in (["evaluate", "1", "--device", "cpu"], ["show", "1", "--device", "cpu"]):
        result = CliRunner().invoke(app, args, env={"COLUMNS": "10000"})
        assert result.exit_code == 2 and "symbolic link" in result.output, result.output
    assert list(elsewhere.iterdir()) == []


def test_an_error_naming_a_long_path_is_one_line_on_a_narrow_terminal(workspace):
    """An error is one line however narrow the terminal, so a log grepped for the file finds it (the GPU machine's
    long temporary paths once wrapped every such message)."""
    missing = workspace / ("a-folder-with-a-long-name-" * 4) / "kvasir"
    result = runner.invoke(app, ["data", "check", str(missing)], env={"COLUMNS": "40"})
    refused(result, str(missing))
