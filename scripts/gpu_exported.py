"""Exported-model speed for the GPU check: the eager model against the files ``medico export`` wrote from it
(TorchScript on the device, ONNX Runtime on the CPU), with each one's masks compared to eager ones on real frames.

    python3 scripts/gpu_exported.py RUN --torchscript FILE --onnx FILE --images DIR --device cuda --json out.json

The TorchScript file is loaded with ``torch.jit.load``: the organiser's own export, never a participant's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from medico.bench import speed
from medico.data.io import list_images, read_rgb
from medico.engine.export import mask_agreement
from medico.engine.inference import Predictor
from medico.engine.runtimes import load_onnx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="the run or checkpoint the files were exported from")
    parser.add_argument("--torchscript", type=Path, required=True)
    parser.add_argument("--onnx", type=Path, required=True)
    parser.add_argument("--images", type=Path, required=True, help="real frames for the mask comparison")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=32, help="the larger batch timed on the device")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()

    device, cpu, plain = torch.device(args.device), torch.device("cpu"), torch.contiguous_format
    target = speed.benchmark_target(args.target)
    size = target.input_size
    frames = [read_rgb(p) for p in list_images(args.images)[:16]]
    eager = Predictor(target.model.float(), size, device, "fp32", memory_format=plain)
    report: dict[str, Any] = {"target": target.label, "input_size": size, "device": str(device), "rows": []}
    contenders = [("torch eager fp32", target.model, device, eager, (1, args.batch))]
    scripted = torch.jit.load(str(args.torchscript), map_location=device)
    contenders.append(("torchscript fp32", scripted, device, Predictor(scripted, size, device, "fp32",
                                                                        memory_format=plain), (1, args.batch)))
    onnx = load_onnx(args.onnx)
    contenders.append(("onnxruntime fp32 (CPU)", onnx, cpu, Predictor(onnx, size, cpu, "fp32", memory_format=plain),
                       (1,)))
    for label, module, where, predictor, batches in contenders:
        agreement = mask_agreement(eager, predictor, frames)
        for batch in batches:
            result = speed.measure_model_speed(module, size, device=where, batch_size=batch, memory_format=plain)
            report["rows"].append({"runtime": label, "batch": batch, "fps": result.fps,
                                   "mask_dice_mean": float(agreement.mean()),
                                   "mask_dice_least": float(agreement.min())})
            print(f"{label:24s} batch {batch:4d}: {result.fps:9.1f} FPS  mask Dice mean {agreement.mean():.4f} "
                  f"least {agreement.min():.4f}", flush=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
