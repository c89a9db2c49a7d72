"""Exported-model speed for the GPU check: eager against TorchScript (traced, frozen) and ONNX Runtime, batch 1
and a larger batch, with the masks of each compared to eager ones on real frames (mask Dice).

    python3 scripts/gpu_exported.py MODEL_OR_RUN --device cuda --images DIR --json out.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medico.bench import speed
from medico.data.io import list_images, read_rgb
from medico.engine.inference import Predictor
from medico.engine.preprocess import normalize, to_tensor
from medico.metrics import confusion_counts, scores_from_counts


def mask_dice(ours: list[np.ndarray], reference: list[np.ndarray]) -> float:
    """Dice of ``ours`` against ``reference`` over all their pixels together (1.0 when both are empty)."""
    counts = sum(confusion_counts(torch.from_numpy(a), torch.from_numpy(b)) for a, b in zip(ours, reference))
    return float(scores_from_counts(counts)["dice"])


def onnx_session(model: torch.nn.Module, size: int, folder: Path, device: torch.device) -> Any:
    """The model exported to ONNX (dynamic batch) and loaded in ONNX Runtime on the best provider it has."""
    import onnxruntime

    path = folder / "model.onnx"
    example = torch.randn(1, 3, size, size)
    torch.onnx.export(model.cpu().float().eval(), (example,), str(path), input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                      dynamo=False)
    wanted = ["CUDAExecutionProvider"] if device.type == "cuda" else []
    providers = [p for p in [*wanted, "CPUExecutionProvider"] if p in onnxruntime.get_available_providers()]
    return onnxruntime.InferenceSession(str(path), providers=providers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="a model name, a run or a checkpoint")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--images", type=Path, required=True, help="real frames for the mask comparison")
    parser.add_argument("--batch", type=int, default=32, help="the larger batch timed")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()

    device = torch.device(args.device)
    target = speed.benchmark_target(args.target)
    size, model = target.input_size, target.model.float().eval()
    frames = [read_rgb(p) for p in list_images(args.images)[:16]]
    plain = torch.contiguous_format
    report: dict[str, Any] = {"target": target.label, "input_size": size, "device": str(device), "rows": []}
    eager = Predictor(model, size, device, "fp32", memory_format=plain)
    reference = eager.masks(frames)

    def timed(label: str, module: torch.nn.Module, dice: float) -> None:
        for batch in (1, args.batch):
            result = speed.measure_model_speed(module, size, device=device, batch_size=batch, memory_format=plain)
            report["rows"].append({"runtime": label, "batch": batch, "fps": result.fps, "mask_dice": dice})
            print(f"{label:28s} batch {batch:4d}: {result.fps:9.1f} FPS  mask Dice {dice:.4f}", flush=True)

    timed("torch eager fp32", model, 1.0)
    try:
        with torch.inference_mode():
            example = torch.randn(1, 3, size, size, device=device)
            traced = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model.to(device), example)))
        timed("torchscript fp32 (frozen)", traced, mask_dice(Predictor(traced, size, device, "fp32",
                                                                       memory_format=plain).masks(frames), reference))
    except Exception as error:  # recorded, not fatal: the check reports what works on this machine
        report["torchscript_error"] = f"{type(error).__name__}: {error}"[:2000]
    try:
        with tempfile.TemporaryDirectory() as folder:
            session = onnx_session(model, size, Path(folder), device)
            report["onnxruntime_providers"] = session.get_providers()
            batch = normalize(to_tensor(frames, size)).numpy()
            logits = session.run(None, {"image": batch})[0]
            small = 1 / (1 + np.exp(-logits[:, 0]))
            masks = [eager.full_mask(p, *f.shape[:2]) for p, f in zip(small, frames)]
            dice = mask_dice(masks, reference)
            on_gpu = session.get_providers()[0] != "CPUExecutionProvider"
            for b in (1, args.batch) if on_gpu else (1,):  # a large batch on the CPU would take minutes
                feed = {"image": np.random.default_rng(0).standard_normal((b, 3, size, size), dtype=np.float32)}
                session.run(None, feed)
                cpu = torch.device("cpu")  # ONNX Runtime returns host arrays: its run is synchronous
                seconds = [speed.time_call(cpu, lambda feed=feed: session.run(None, feed)) for _ in range(10)]
                fps = b / float(np.median(seconds))
                label = f"onnxruntime ({session.get_providers()[0]})"
                report["rows"].append({"runtime": label, "batch": b, "fps": fps, "mask_dice": dice})
                print(f"{label:28s} batch {b:4d}: {fps:9.1f} FPS  mask Dice {dice:.4f}", flush=True)
    except Exception as error:
        report["onnxruntime_error"] = f"{type(error).__name__}: {error}"[:2000]
    args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
