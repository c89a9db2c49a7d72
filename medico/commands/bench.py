"""``medico bench``: model FPS (forward only) and end-to-end FPS, parameters and forward FLOPs; with training
timed, the data pipeline's images/s beside the training rate it must sustain."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

import torch
import typer
from rich.markup import escape
from rich.table import Table

from medico.bench import peers, speed
from medico.commands.options import TrustedModel, Tta
from medico.console import console, err_console
from medico.data import open_dataset
from medico.data.io import list_images, read_rgb
from medico.data.synthetic import synthetic_test_images
from medico.engine.inference import Predictor
from medico.engine.runtimes import runtime_layout, runtime_model, runtime_setting
from medico.engine.tta import check_tta
from medico.files import check_target, write_atomic

SYNTHETIC_IMAGES = 8


def bench(
    model: Annotated[
        str, typer.Argument(help="A model name or file.py:builder spec, a .pt checkpoint, or a run (number, id).")
    ],
    input_size: Annotated[
        int | None, typer.Option(min=8, help="Square input side (default: the checkpoint's or the plugin's).")
    ] = None,
    batch_size: Annotated[
        list[int] | None, typer.Option("--batch-size", min=1, help="Batch sizes to time; repeat the option.")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    precision: Annotated[str, typer.Option(help="auto, fp32, bf16 or fp16.")] = "auto",
    repeats: Annotated[int, typer.Option(min=1, help="Timed runs; the median is reported.")] = 10,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed runs first.")] = 3,
    images: Annotated[
        Path | None, typer.Option(help="Images for end-to-end FPS (default: a few synthetic frames).")
    ] = None,
    json_file: Annotated[Path | None, typer.Option("--json", help="Also write the results to this JSON file.")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing --json file.")] = False,
    vs: Annotated[
        list[str] | None,
        typer.Option(
            "--vs",
            help="Also time a peer implementation (monai) or the model in another runtime (onnxruntime, openvino) in "
            "this process; repeatable.",
        ),
    ] = None,
    train_batch_size: Annotated[
        int | None,
        typer.Option(min=1, help="Also time training steps at this batch (default 16 with --vs); with ratios."),
    ] = None,
    compile: Annotated[
        bool,
        typer.Option(
            "--compile/--no-compile", help="Time the model compiled for inference (frozen weights); compile time shown."
        ),
    ] = False,
    data: Annotated[
        Path | None,
        typer.Option(help="Dataset whose training pipeline is timed with training (default: the synthetic set)."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=0, help="Loader workers for the pipeline timing (default: as training picks them)."),
    ] = None,
    runtime: Annotated[
        str,
        typer.Option(
            help="Run the timed model in torch, onnxruntime or openvino (its exported graph; medico[onnx], "
            "medico[openvino])."
        ),
    ] = "torch",
    tta: Tta = "none",
    trusted_model: TrustedModel = None,
) -> None:
    """Time a model: model FPS (forward only) and end-to-end FPS, parameters and forward GFLOPs.

    Model FPS at batch 1 and a larger batch; end-to-end FPS (decode, resize, forward, resize back, threshold) at
    batch 1; medians over repeated runs after a warm-up, with device, threads, precision and torch version. With
    training timed (--vs or --train-batch-size), also the images/s the training data pipeline delivers. --tta
    times the end-to-end path with test-time augmentation (forward-only FPS is one pass).
    """
    check_tta(tta)
    if json_file is not None:
        check_target(json_file, replace=force)  # refused now, not after minutes of timing
    target = speed.benchmark_target(model, model=trusted_model)
    size = input_size or target.input_size
    chosen, chosen_precision = runtime_setting(runtime, device, precision, compile)
    # Peers are built first, so that a missing or unknown one fails before anything is timed.
    wanted = bool(vs or train_batch_size)
    contenders = None
    if wanted:
        contenders = peers.contenders(target.model, target.label, chosen_precision, vs or [], size, chosen)
    flops = speed.count_flops(target.model, size)
    with tempfile.TemporaryDirectory(prefix="medico-bench-") as scratch:
        if images is None:
            paths, source = synthetic_test_images(Path(scratch), count=SYNTHETIC_IMAGES), "synthetic frames"
        else:
            paths, source = list_images(images), str(images)
        compared = pipeline = None
        if contenders is not None:  # first, while the allocator is fresh (see medico.bench.peers.compare)
            compared = _compare(
                flops, contenders, size, chosen, chosen_precision, train_batch_size or 16, warmup, repeats, paths
            )
            pipeline = _pipeline(data, size, train_batch_size or 16, chosen, workers, repeats, compared)
        engine = runtime_model(target.model, size, runtime)
        layout = runtime_layout(runtime)
        predictor = Predictor(engine, size, chosen, chosen_precision, memory_format=layout, compile=compile, tta=tta)
        if compile:  # the first call compiles: time it apart so that no FPS figure includes it
            compile_seconds = speed.time_call(chosen, lambda: predictor.masks([read_rgb(paths[0])]))
            err_console.print(f"compiled for inference (frozen weights) in {compile_seconds:.1f} s")
        results = [
            speed.measure_model_speed(
                predictor.model, size, device=chosen, precision=chosen_precision, batch_size=b, warmup=warmup,
                repeats=repeats, memory_format=layout,
            )
            for b in dict.fromkeys(batch_size or [1, 8])
        ]
        results.append(speed.measure_end_to_end_speed(predictor, paths, warmup=min(warmup, len(paths)), repeats=1))

    table = Table(title=f"speed of {escape(target.label)}")
    for column in ("timed", "batch", "input", "FPS (median)", "FPS min–max", "latency ms"):
        table.add_column(column, justify="left" if column == "timed" else "right")
    for result in results:
        augmented = "" if tta == "none" else f", tta {tta}"
        timed = "forward only" if result.kind == "model" else f"end to end ({len(paths)} {escape(source)}{augmented})"
        table.add_row(
            timed,
            str(result.batch_size),
            f"{result.input_size}x{result.input_size}",
            f"{result.fps:.1f}",
            f"{result.fps_min:.1f}–{result.fps_max:.1f}",
            f"{result.latency_ms:.1f}",
        )
    console.print(table)
    forward = [r for r in results if r.kind == "model"]
    best = max(forward, key=lambda r: r.fps)
    if len(forward) > 1:
        console.print(f"highest model FPS: {best.fps:.1f} at batch {best.batch_size}")
    first = results[0]
    console.print(f"parameters: {target.parameters:,}")
    console.print(f"forward: {flops / 1e9:.2f} GFLOPs per image at {size}x{size} ({speed.FLOP_CONVENTION})")
    console.print(
        f"device: {escape(first.device)} · threads {first.threads} · precision {first.precision} · "
        + ("compiled (frozen weights) · " if compile else "")
        + (f"runtime {runtime} · " if runtime != "torch" else "")
        + f"torch {first.torch_version}"
    )
    if json_file is not None:
        report = {
            "target": target.label,
            "compiled": compile,
            "runtime": runtime,
            "parameters": target.parameters,
            "flops": flops,
            "flop_convention": speed.FLOP_CONVENTION,
            "end_to_end_images": source,
            "tta": tta,
            "results": [r.as_dict() for r in results],
            "best_batch": best.batch_size,
            "comparison": compared,
            "data_pipeline": pipeline,
        }
        write_atomic(json_file, json.dumps(report, indent=2) + "\n", replace=force)
        err_console.print(f"results written to {escape(str(json_file))}")


def _compare(
    flops: int,
    rows: list[peers.Contender],
    size: int,
    device: torch.device,
    precision: str,
    train_batch_size: int,
    warmup: int,
    repeats: int,
    paths: list[Path],
) -> dict[str, Any]:
    """Time medico's defaults, the plain eager fp32 loop and peers in this process; print ratios and the roof."""
    with err_console.status("timing") as status:
        measured = peers.compare(
            rows, size, device=device, train_batch_size=train_batch_size, warmup=warmup, repeats=repeats,
            image_paths=paths, progress=lambda label: status.update(f"timing {escape(label)}"),
        )
        roof = peers.roof_use(measured[0], flops, device)
    baselines = [row for row in measured if row.contender.baseline]
    table = Table(title=f"speed against baselines, {size}x{size}, measured in one process")
    table.add_column("contender")
    table.add_column("precision · layout")
    table.add_column("model FPS b1 (min–max)", justify="right")
    table.add_column("end-to-end FPS (min–max)", justify="right")
    table.add_column(f"training b{train_batch_size} img/s (min–max)", justify="right")
    for base in baselines:
        table.add_column(f"× {escape(base.contender.label)}\nmodel · end-to-end · training", justify="right")
    runtimes = any(row.contender.runtime for row in measured)
    if runtimes:
        table.add_column("mask Dice vs defaults\n(least per image)", justify="right")
    for row in measured:
        cells = [
            escape(row.contender.label),
            f"{row.contender.precision} · {row.contender.layout}",
            _speed_cell(row.inference),
            _speed_cell(row.end_to_end),
            _speed_cell(row.training),
        ]
        for base in baselines:
            pairs = ((row.inference, base.inference), (row.end_to_end, base.end_to_end), (row.training, base.training))
            cells.append(" · ".join("–" if ours is None or theirs is None else f"{ours.fps / theirs.fps:.2f}"
                                    for ours, theirs in pairs))
        if runtimes:
            cells.append("" if row.agreement is None else f"{row.agreement:.4f}")
        table.add_row(*cells)
    console.print(table)
    for kind, value in roof.achieved.items():
        console.print(
            f"{kind}: {value / 1e9:.1f} GFLOP/s achieved = {roof.share(kind):.0%} of the measured "
            f"{precision} matmul roof ({roof.roof[precision] / 1e9:.0f} GFLOP/s; "
            f"fp32 roof {roof.roof['fp32'] / 1e9:.0f})"
        )
    return {
        "train_batch_size": train_batch_size,
        "rows": [row.as_dict() for row in measured],
        "matmul_roof_flops": roof.roof,
        "achieved_flops": roof.achieved,
    }


def _pipeline(
    data: Path | None,
    size: int,
    batch_size: int,
    device: torch.device,
    workers: int | None,
    repeats: int,
    compared: dict[str, Any],
) -> dict[str, Any]:
    """Time the training data pipeline and print whether it keeps up with medico's training rate."""
    dataset = open_dataset(data)
    with err_console.status(f"timing the data pipeline ({len(dataset.names)} images)"):
        result = speed.measure_training_pipeline(
            dataset, size, batch_size=batch_size, device=device, workers=workers, repeats=repeats
        )
    training = compared["rows"][0]["training"]["fps"]
    margin = result.fps / training
    verdict = "keeps up with" if margin >= 1 else "[yellow]is slower than[/] (the device waits for data; add --workers)"
    console.print(
        f"data pipeline: {_speed_cell(result)} img/s with {result.workers} loader workers "
        f"({escape(dataset.description)}, cached decode, augmentation, batch {batch_size}); "
        f"{margin:.1f}× medico's training rate ({training:.2f} img/s): it {verdict} training"
    )
    return {**result.as_dict(), "data": dataset.description, "training_fps": training, "margin": margin}


def _speed_cell(result: speed.SpeedResult | None) -> str:
    if result is None:
        return "–"
    return f"{result.fps:.2f} ({result.fps_min:.2f}–{result.fps_max:.2f})"
