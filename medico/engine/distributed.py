"""Training on several processes with torch.distributed: the process group, ranks, sharding and gathering.

The processes come from torchrun (``torchrun --nproc-per-node N -m medico run MODEL``; several machines through
its rendezvous arguments) or from ``--nproc N``, which spawns them on this machine (:func:`launch`). NCCL
carries GPU tensors and gloo CPU tensors (and the pickled objects of the object collectives). With one
process every helper here is a no-op, so the single-process path is the same code. Rank 0 is the process
that writes: checkpoints, run records, the leaderboard entry and the console.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.multiprocessing.spawn import ProcessContext, ProcessException
from torch.nn.parallel import DistributedDataParallel

from medico.engine.allocator import tune_allocator
from medico.engine.contract import check_logit_ranges
from medico.engine.evaluation import ImageSource, evaluate
from medico.engine.inference import Predictor
from medico.engine.result import COUNT_NAMES, EvaluationResult
from medico.errors import MedicoError

__all__ = [
    "DistributedError",
    "barrier",
    "broadcast_buffers",
    "broadcast_object",
    "evaluate_sharded",
    "is_main",
    "launch",
    "run_distributed",
    "launched_by_torchrun",
    "local_device",
    "local_rank",
    "local_world_size",
    "mean_over_ranks",
    "per_rank_batch",
    "prepare_model",
    "process_group",
    "rank",
    "spawn_needed",
    "world_size",
]

T = TypeVar("T")


class DistributedError(MedicoError):
    """``--nproc`` or ``--sync-bn`` cannot be honoured: a bad process count, a batch that does not split evenly,
    SyncBatchNorm without GPUs, more processes than GPUs."""


def _active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank in the group (0 without one)."""
    return dist.get_rank() if _active() else 0


def world_size() -> int:
    """How many processes train together (1 without a group)."""
    return dist.get_world_size() if _active() else 1


def is_main() -> bool:
    """Whether this process is rank 0, the one that writes files and prints."""
    return rank() == 0


def local_world_size() -> int:
    """How many processes of the group run on this machine (torchrun's LOCAL_WORLD_SIZE; 1 without a group)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if _active() else 1


def local_rank() -> int:
    """This process's rank among the group's processes on this machine (torchrun's LOCAL_RANK; 0 without a group)."""
    return int(os.environ.get("LOCAL_RANK", "0")) if _active() else 0


def launched_by_torchrun() -> bool:
    """Whether torchrun (or another launcher using its ``env://`` variables) started this process."""
    return all(key in os.environ for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def _join_group(**init: Any) -> None:
    """Join the process group: gloo for CPU tensors, plus NCCL for CUDA tensors where CUDA is available."""
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available() and local < torch.cuda.device_count():
        torch.cuda.set_device(local)  # NCCL's collectives run on the current device: this process's GPU
    dist.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo", **init)


@contextlib.contextmanager
def process_group() -> Iterator[None]:
    """Inside torchrun: join its process group (``env://``) for the block and leave it afterwards.

    Nothing happens when torchrun did not start this process, or when it is already in a group (a process
    spawned by :func:`launch`, whose group lives as long as the process).
    """
    if _active() or not launched_by_torchrun():
        yield
        return
    _join_group(init_method="env://")
    try:
        yield
    finally:
        dist.destroy_process_group()


def spawn_needed(nproc: int | None) -> bool:
    """Whether ``--nproc`` asks this process to start the training processes itself (:func:`launch`).

    Raises:
        DistributedError: ``nproc`` is below 1 or above the cores or GPUs here (each process needs one), or
            torchrun started this process (torchrun sets the count).
    """
    if nproc is None:
        return False
    most = max(_cores(), torch.cuda.device_count())
    if not 1 <= nproc <= most:
        raise DistributedError(
            f"--nproc: expected 1 to {most} processes (one per core or GPU of this machine), got {nproc}"
        )
    if _active():
        return False  # one of the processes that launch() started
    if launched_by_torchrun():
        raise DistributedError(
            f"--nproc {nproc}: this process was started by torchrun (WORLD_SIZE={os.environ['WORLD_SIZE']}), "
            "which sets the number of processes with --nproc-per-node; leave --nproc out"
        )
    return nproc > 1


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_distributed(
    nproc: int | None, fn: Callable[..., Any], *args: Any, worker_setup: Callable[[], None] | None = None, **kwargs: Any
) -> None:
    """``fn(*args, **kwargs)`` in this process, in each process torchrun started, or in ``nproc`` processes spawned
    here (see :func:`launch`), inside the process group; ``worker_setup()`` runs first in every process but rank 0.
    ``fn`` and ``worker_setup`` must be importable by name (processes are spawned)."""
    if spawn_needed(nproc):
        launch(nproc, run_distributed, nproc, fn, *args, worker_setup=worker_setup, **kwargs)
        return
    with process_group():
        if not is_main() and worker_setup is not None:
            worker_setup()
        fn(*args, **kwargs)


def launch(nproc: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Run ``fn(*args, **kwargs)`` in ``nproc`` new processes on this machine, joined in one process group.

    Each process gets ``cores // nproc`` threads (at least one) and, where there are GPUs, the GPU of its rank.
    ``fn`` must be importable by name (the processes are spawned, not forked). A :class:`MedicoError` raised
    in a process is raised again here (from the lowest rank that raised one); a process that exits with a
    code of its own (``typer.Exit``) ends this one with that code; any other failure is torch.multiprocessing's
    exception with the process's traceback.
    """
    threads = max(1, _cores() // nproc)
    with tempfile.TemporaryDirectory(prefix="medico-ddp-") as folder:
        context = mp.start_processes(
            _process, args=(nproc, threads, folder, fn, args, kwargs), nprocs=nproc, join=False, start_method="spawn"
        )
        failure = _wait(context)
        if failure is None:
            return
        for index in range(nproc):
            error = _read_error(Path(folder) / f"error-{index}.pickle")
            if error is not None:
                raise error from None
        if isinstance(failure, mp.ProcessExitedException) and failure.exit_code > 0:
            raise SystemExit(failure.exit_code)
        raise failure


def _wait(context: ProcessContext, grace: float = 30.0) -> ProcessException | None:
    """Wait for every process; None when all succeeded, else the first failure (the others are then ended).

    Ctrl-C reaches the processes too (the terminal signals the whole process group): they stop, say how to
    resume and exit; each gets ``grace`` seconds to do so before a failure elsewhere ends it.
    """
    while True:
        try:
            if context.join():
                return None
        except KeyboardInterrupt:
            for process in context.processes:
                with contextlib.suppress(KeyboardInterrupt):
                    process.join(grace)
        except ProcessException as failure:
            return failure


def _read_error(path: Path) -> MedicoError | None:
    if not path.is_file():
        return None
    try:
        return pickle.loads(path.read_bytes())
    except Exception:  # an error class whose constructor cannot be replayed from its args
        return DistributedError(f"a training process failed with an error that could not be read back ({path.name})")


def _process(index: int, nproc: int, threads: int, folder: str, fn: Callable[..., Any], args: Any, kwargs: Any) -> None:
    """One process started by :func:`launch`: join the group (rendezvous through a file), run ``fn``, leave."""
    os.environ.update(RANK=str(index), LOCAL_RANK=str(index), WORLD_SIZE=str(nproc), LOCAL_WORLD_SIZE=str(nproc))
    torch.set_num_threads(threads)
    tune_allocator()  # the process runs a command: the same start-up as the command line's
    _join_group(init_method=f"file://{folder}/rendezvous", rank=index, world_size=nproc)
    try:
        fn(*args, **kwargs)
    except MedicoError as error:
        (Path(folder) / f"error-{index}.pickle").write_bytes(pickle.dumps(error))
        sys.exit(error.exit_code)
    except Exception as error:
        code = getattr(error, "exit_code", None)  # typer.Exit: the command already said why
        if not isinstance(code, int):
            raise
        sys.exit(code)
    finally:
        dist.destroy_process_group()


def local_device(device: torch.device) -> torch.device:
    """The device this process trains on: with several processes a GPU device becomes the GPU of the local rank.

    Raises:
        DistributedError: the local rank has no GPU of its own.
    """
    if world_size() == 1 or device.type != "cuda":
        return device
    local = local_rank()
    if local >= torch.cuda.device_count():
        raise DistributedError(
            f"process of local rank {local} needs GPU {local}, but {torch.cuda.device_count()} are visible; "
            "start at most one process per GPU, or train with --device cpu"
        )
    return torch.device("cuda", local)


def per_rank_batch(batch_size: int) -> int:
    """Each process's share of the (global) ``--batch-size``, which must split evenly over the processes."""
    world = world_size()
    if batch_size % world:
        raise DistributedError(
            f"--batch-size {batch_size}: the batch is split evenly over {world} processes; "
            f"expected a multiple of {world}"
        )
    return batch_size // world


def prepare_model(model: nn.Module, device: torch.device, sync_bn: bool | None) -> tuple[nn.Module, nn.Module, bool]:
    """The model for several processes: BatchNorm optionally made SyncBatchNorm, then DistributedDataParallel.

    Args:
        model: the plugin's model, already on ``device``.
        device: this process's device.
        sync_bn: synchronise BatchNorm statistics over all processes; None: on GPUs yes, on CPUs no.

    Returns:
        ``(module, step_module, sync_bn)``: the module whose weights are saved and evaluated, the module the
        training step calls (the DDP wrapper, whose backward averages the gradients) and the choice made.
        With one process both are ``model`` and ``sync_bn`` is False.

    Raises:
        DistributedError: ``sync_bn`` is True on a CPU (PyTorch synchronises BatchNorm on GPUs only).
    """
    if world_size() == 1:
        return model, model, False
    if sync_bn is None:
        sync_bn = device.type == "cuda"
    if sync_bn and device.type != "cuda":
        raise DistributedError(
            f"--sync-bn: PyTorch's SyncBatchNorm needs GPUs, and this run trains on {device}; use --no-sync-bn "
            "(each process then normalises with the statistics of its own part of the batch)"
        )
    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    wrapper = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return model, wrapper, sync_bn


def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """The mean of a tensor over all processes (a NaN on one process reaches all, so all stop together)."""
    if world_size() == 1:
        return value
    total = value.detach().clone()
    dist.all_reduce(total)
    return total / world_size()


def broadcast_object(value: T) -> T:
    """Rank 0's ``value`` on every process (e.g. the run folder that rank 0 created)."""
    if world_size() == 1:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def broadcast_buffers(module: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every process, in place.

    Without SyncBatchNorm each process's last training step leaves statistics of its own batch; validation and
    the checkpoint must use the same ones, rank 0's.
    """
    if world_size() == 1:
        return
    for buffer in module.buffers():
        dist.broadcast(buffer, src=0)


def barrier() -> None:
    """Wait until every process gets here (e.g. until rank 0 has written a checkpoint the others read)."""
    if world_size() > 1:
        dist.barrier()


def _my_batches(count: int, batch_size: int) -> list[int]:
    """Indices of this process's batches: batch ``b`` of the single-process order goes to rank ``b % world``."""
    world, me = world_size(), rank()
    starts = range(me * batch_size, count, world * batch_size)
    return [i for start in starts for i in range(start, min(start + batch_size, count))]


def evaluate_sharded(
    predictor: Predictor,
    dataset: ImageSource,
    names: Sequence[str],
    *,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> EvaluationResult:
    """:func:`medico.engine.evaluation.evaluate` with the images shared out over the processes, gathered on every one.

    The single-process batches are dealt out whole (batch ``b`` to rank ``b % world``): no image is padded in
    or scored twice, each batch holds the images it would hold in one process, and the result, rebuilt from the
    gathered per-image counts in the order of ``names``, is exactly that of ``evaluate``. ``progress`` gets an
    estimate of the images scored by all processes (this process's count times the number of processes).
    """
    names = list(names)
    world = world_size()
    if world == 1 or not names:
        return evaluate(predictor, dataset, names, batch_size=batch_size, progress=progress)
    mine = _my_batches(len(names), batch_size)
    part = None
    if mine:
        overall = None if progress is None else lambda done, _: progress(min(done * world, len(names)), len(names))
        local = evaluate(
            predictor, dataset, [names[i] for i in mine], batch_size=batch_size, progress=overall, check_logits=False
        )
        rows = local.per_image
        part = (
            mine, list(zip(rows["height"], rows["width"])), rows[list(COUNT_NAMES)].to_numpy(), local.policy,
            local.logit_ranges,
        )
    parts: list[Any] = [None] * world
    dist.all_gather_object(parts, part)
    parts = [p for p in parts if p is not None]
    order = np.argsort(np.concatenate([p[0] for p in parts]), kind="stable")
    sizes = [size for p in parts for size in p[1]]
    counts = np.concatenate([p[2] for p in parts])[order]
    ranges = np.concatenate([p[4] for p in parts])[order]
    check_logit_ranges(names, ranges)  # on every process alike, over all the images
    return EvaluationResult.from_counts(
        names, [tuple(map(int, sizes[i])) for i in order], torch.from_numpy(counts), parts[0][3], ranges
    )
