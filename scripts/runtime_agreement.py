"""Exported ONNX files in each graph runtime (ONNX Runtime, OpenVINO) against the checkpoint they came from: the
least and mean per-image mask Dice against the eager fp32 model on real frames (and OpenVINO's against ONNX
Runtime's), and with ``--rounds`` model FPS at batch 1, every contender timed in turn in each round (a shared
machine's load then weighs on all alike; the median over rounds is printed).

    python3 scripts/runtime_agreement.py CHECKPOINT FILE.onnx [FILE-int8.onnx ...] --images DIR [--names val.txt]
        [--count 120] [--rounds 10]

``medico export`` asks an fp32 file for a least Dice of 0.999 and an int8 one for a mean of 0.99 (ONNX Runtime).
"""

from __future__ import annotations

import argparse
import copy
import statistics
from pathlib import Path

import torch

from medico.bench.speed import measure_model_speed
from medico.data.io import list_images, read_rgb
from medico.engine.export import mask_agreement
from medico.engine.runtimes import GRAPH_RUNTIMES, load_onnx, load_predictor
from medico.runs.checkpoint import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="the checkpoint the files were exported from")
    parser.add_argument("files", type=Path, nargs="+", help="ONNX files exported from it")
    parser.add_argument("--images", type=Path, required=True, help="real frames (the first --count by name)")
    parser.add_argument("--names", type=Path, help="a split file (one image stem a line) choosing the frames")
    parser.add_argument("--count", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=0, help="rounds of batch-1 timing (0: masks only)")
    args = parser.parse_args()

    paths = list_images(args.images)
    if args.names is not None:
        wanted = set(args.names.read_text().split())
        paths = [path for path in paths if path.stem in wanted]
    frames = [read_rgb(path) for path in paths[: args.count]]
    eager = load_predictor(args.checkpoint, runtime="torch", device="cpu", precision="fp32")
    foreground = sum(float(mask.mean() > 0) for mask in eager.masks(frames))
    print(f"{len(frames)} frames; eager fp32 predicts polyp on {foreground:.0f} of them", flush=True)
    for path in args.files if frames else ():
        predictors = {runtime: load_predictor(path, runtime=runtime) for runtime in GRAPH_RUNTIMES}
        for runtime, predictor in predictors.items():
            dice = mask_agreement(eager, predictor, frames)
            print(f"{path.name:24s} {runtime:12s} vs eager fp32: least Dice {dice.min():.4f} mean {dice.mean():.4f}",
                  flush=True)
        dice = mask_agreement(predictors["onnxruntime"], predictors["openvino"], frames)
        print(f"{path.name:24s} openvino vs onnxruntime:  least Dice {dice.min():.4f} mean {dice.mean():.4f}",
              flush=True)
    if args.rounds:
        _time(args.checkpoint, args.files, args.rounds)


def _time(checkpoint: Path, files: list[Path], rounds: int) -> None:
    """Median batch-1 model FPS over ``rounds`` of every contender timed in turn, with ratios to plain eager fp32."""
    model, spec = load_model(checkpoint)
    size = spec.input_size
    plain = torch.contiguous_format
    contenders = {
        "plain eager fp32 (NCHW)": (model, plain), "eager fp32 NHWC": (copy.deepcopy(model), torch.channels_last),
    }
    for path in files:
        for runtime in GRAPH_RUNTIMES:
            contenders[f"{path.name} {runtime}"] = (load_onnx(path, runtime), plain)
    fps: dict[str, list[float]] = {label: [] for label in contenders}
    for _ in range(rounds):
        for label, (network, layout) in contenders.items():
            result = measure_model_speed(network, size, device="cpu", warmup=1, repeats=3, memory_format=layout)
            fps[label].append(result.fps)
    base = statistics.median(fps["plain eager fp32 (NCHW)"])
    print(f"model FPS at batch 1, {size}x{size}, {torch.get_num_threads()} threads, median of {rounds} rounds:")
    for label, values in fps.items():
        median = statistics.median(values)
        print(f"  {label:40s} {median:7.2f} FPS (min {min(values):.2f}, max {max(values):.2f})  "
              f"x{median / base:.2f} plain eager", flush=True)


if __name__ == "__main__":
    main()
