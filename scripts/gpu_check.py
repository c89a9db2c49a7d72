"""One-go GPU check: install, bench (eager, compiled, exported; batch 1 and the best batch), a 3-epoch training on
real data, evaluation, submission, then the fast test suite, all written to one JSON.

Run it whenever a GPU machine is lent (see README, "Checking a GPU machine"):

    python3 scripts/gpu_check.py --data DATA --test-images IMAGES --wheels WHEELS --out results.json

Every step runs as its own ``python -m medico`` process under a time limit, so one failure is recorded with
its output and the next step still runs; steps that no longer fit the budget are recorded as skipped.
Nothing here asserts speed: it reports numbers, with the device, torch and precision beside them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TAIL = 4000  # characters of each step's output kept in the JSON
BATCHES = (1, 8, 32, 128, 256)
GROUPS = ("bench", "train", "recipes", "tests")
RECIPES = {  # training recipes compared at one time budget (--recipe-time) on the real split, same seed
    "lr 1e-4 (the paper's)": ["--lr", "1e-4"],
    "lr 1e-3": ["--lr", "1e-3"],
    "lr 1e-3 + EMA": ["--lr", "1e-3", "--average", "ema"],
    "lr 3e-4 + EMA": ["--lr", "3e-4", "--average", "ema"],
}


class Check:
    """The JSON being built: one record per step, written after every step so a killed run still leaves it."""

    def __init__(self, out: Path, budget: float, env: dict[str, str]) -> None:
        self.out, self.budget, self.env = out, budget, env
        self.start = time.monotonic()
        self.report: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "steps": {}}

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.start)

    def save(self) -> None:
        self.report["elapsed_s"] = round(time.monotonic() - self.start, 1)
        temporary = self.out.with_name(self.out.name + ".tmp")
        temporary.write_text(json.dumps(self.report, indent=2) + "\n")
        temporary.replace(self.out)

    def step(
        self, name: str, command: list[str], limit: float, json_file: Path | None = None, cwd: Path | None = None
    ) -> dict[str, Any]:
        """Run one command under ``limit`` seconds (less if the budget is shorter); record rc, time and output."""
        limit = min(limit, self.left())
        if limit < 20:
            record: dict[str, Any] = {"skipped": f"{self.left():.0f} s of the budget left"}
        else:
            print(f"== {name}: {' '.join(command)}", flush=True)
            began = time.monotonic()
            try:
                done = subprocess.run(
                    command, cwd=cwd or self.env["WORK"], env=self.env, capture_output=True, text=True, timeout=limit
                )
                record = {"rc": done.returncode, "output": (done.stdout + done.stderr)[-TAIL:]}
            except subprocess.TimeoutExpired as stopped:
                output = (stopped.stdout or b"") + (stopped.stderr or b"")
                text = output.decode(errors="replace") if isinstance(output, bytes) else output
                record = {"rc": None, "timed_out_s": round(limit), "output": text[-TAIL:]}
            record["seconds"] = round(time.monotonic() - began, 1)
            if json_file is not None and json_file.is_file():
                record["result"] = json.loads(json_file.read_text())
            print(record["output"][-1500:], flush=True)
        self.report["steps"][name] = record
        self.save()
        return record


def install(wheels: Path | None, site: Path) -> dict[str, Any]:
    """Wheels of what the image lacks (albumentations and its needs) into ``site``, then medico itself, editable
    (``medico.baselines`` is the repository's baselines/ folder, importable only through the installed mapping)."""
    found = sorted(wheels.glob("*.whl")) if wheels is not None else []
    steps = [[sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
              "--no-cache-dir", "--upgrade", "--target", str(site), *map(str, found)]] if found else []
    steps.append([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-build-isolation",
                  "--no-cache-dir", "-e", str(REPO)])
    report: dict[str, Any] = {"wheels": [p.name for p in found], "rc": 0, "output": ""}
    for command in steps:
        done = subprocess.run(command, capture_output=True, text=True)
        report["rc"] = report["rc"] or done.returncode
        report["output"] += (done.stdout + done.stderr)[-TAIL:]
    return report


def environment() -> dict[str, Any]:
    """The machine: GPU, driver, torch and CUDA versions, what bf16 support torch reports."""
    import torch

    facts: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                             "cuda": torch.version.cuda, "cpus": os.cpu_count(), "gpu": None}
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        facts["gpu"] = {"name": properties.name, "capability": list(torch.cuda.get_device_capability(0)),
                        "memory_gib": round(properties.total_memory / 2**30, 1),
                        "multiprocessors": properties.multi_processor_count,
                        "bf16": torch.cuda.is_bf16_supported()}
    smi = shutil.which("nvidia-smi")
    if smi:
        facts["nvidia_smi"] = subprocess.run([smi, "-L"], capture_output=True, text=True).stdout.strip()
    return facts


def train_and_submit(
    check: Check, work: Path, medico: list[str], device: list[str], size: list[str], args: argparse.Namespace,
    data: str, test_images: str,
) -> bool:
    """Train the first model on the real split, evaluate it in fp32, submit task 1 and validate the archive."""
    model = args.models[0]
    run = [*medico, "run", model, "--data", data, "--split", "medico2020", "--epochs", str(args.epochs), *device,
           *size, "--team", "gpu-check"]
    record = check.step(f"run {model} {args.epochs} epochs (real data)", run, 240)
    folder = next((r for r in sorted((work / "runs").glob("*")) if (r / "summary.json").is_file()), None)
    if record.get("rc") != 0 or folder is None:
        return False
    record["summary"] = json.loads((folder / "summary.json").read_text())
    record["history"] = (folder / "history.csv").read_text()
    record["environment"] = json.loads((folder / "environment.json").read_text())
    check.save()
    check.step("evaluate latest (fp32)", [*medico, "evaluate", "latest", *device, "--precision", "fp32"], 90)
    check.step("evaluate latest (tta flip+rot)", [*medico, "evaluate", "latest", *device, "--tta", "flip+rot"], 90)
    check.step("submit task 1", [*medico, "submit", "--team", "gpu-check", "--checkpoint", "latest", "--images",
                                 test_images, "--out", str(work / "submissions"), *device], 90)
    archives = sorted((work / "submissions").rglob("*.zip"))
    if archives:
        check.step("validate", [*medico, "validate", str(archives[0]), "--images", test_images], 60)
    return True


def compare_recipes(check: Check, work: Path, medico: list[str], device: list[str], size: list[str],
                    args: argparse.Namespace, data: str) -> None:
    """Train attunet with each of :data:`RECIPES` for ``--recipe-time`` on the real split; keep each run's summary
    and per-image scores (paired comparisons are made from them afterwards, with ``medico compare``'s statistics)."""
    for label, options in RECIPES.items():
        before = set((work / "runs").glob("*"))
        record = check.step(f"recipe {label}", [*medico, "run", "attunet", "--data", data, "--split", "medico2020",
                                                "--max-time", args.recipe_time, "--seed", "0", "--no-leaderboard",
                                                *device, *size, *options], 150)
        made = [r for r in set((work / "runs").glob("*")) - before if (r / "summary.json").is_file()]
        if made:
            record["summary"] = json.loads((made[0] / "summary.json").read_text())
            record["per_image"] = (made[0] / "per_image.csv").read_text()
            record["run"] = made[0].name
            check.save()
    trained = [r for r in check.report["steps"].values() if "summary" in r and "run" in r]
    if trained:  # test-time augmentation of the best recipe's model, against its own evaluation
        best = max(trained, key=lambda r: r["summary"]["validation"]["scores"]["dice"])["run"]
        for mode in ("flip", "flip+rot"):
            out = work / f"tta-{mode}"
            record = check.step(f"evaluate best recipe ({best}) tta {mode}", [
                *medico, "evaluate", best, *device, "--tta", mode, "--out", str(out)], 60)
            if (out / "per_image.csv").is_file():
                record["per_image"] = (out / "per_image.csv").read_text()
                check.save()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Kvasir-SEG folder with splits/medico2020")
    parser.add_argument("--test-images", type=Path, required=True, help="a few test images for the submission")
    parser.add_argument("--wheels", type=Path, help="folder of wheels to install first (albumentations and needs)")
    parser.add_argument("--out", type=Path, required=True, help="the JSON written")
    parser.add_argument("--budget", type=float, default=450, help="seconds for everything (default 450)")
    parser.add_argument("--device", default="cuda", help="device for every step (cpu to try the script here)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--input-size", type=int, help="for bench and training (default: each model's)")
    parser.add_argument("--models", nargs="+", default=["attunet", "unet"])
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    parser.add_argument("--groups", nargs="+", choices=GROUPS, default=["bench", "train", "tests"],
                        help="what to run, in the order of the choices (default: bench train tests)")
    parser.add_argument("--recipe-time", default="30s", help="time budget of each recipe run (group recipes)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="medico-gpu-check-"))
    site = work / "site"
    env = {**os.environ, "WORK": str(work), "MEDICO_RUNS": str(work / "runs"), "PYTHONUNBUFFERED": "1",
           "MEDICO_CACHE": str(work / "cache"), "PYTHONPATH": str(site)}
    check = Check(args.out.resolve(), args.budget, env)
    check.report["install"] = install(args.wheels, site)
    sys.path[:0] = [str(site)]
    check.report["environment"] = environment()
    check.save()
    medico = [sys.executable, "-m", "medico"]
    data, test_images = str(args.data.resolve()), str(args.test_images.resolve())
    batches = [option for b in args.batches for option in ("--batch-size", str(b))]
    device = ["--device", args.device]
    size = ["--input-size", str(args.input_size)] if args.input_size else []

    def bench(model: str, label: str, options: list[str], limit: float) -> None:
        result = work / f"bench-{model}-{label}.json"
        check.step(f"bench {model} {label}", [*medico, "bench", model, *device, *size, *options, "--json",
                                               str(result)], limit, result)

    # Most telling first: default precision (bf16 on Ampere and later) against the plain eager fp32 loop, with
    # training img/s and whether the real data pipeline keeps up; then a real training, its exported model and
    # submission; then fp32, compiled and the other models; the test suite last.
    first, *others = args.models
    if "bench" in args.groups:
        bench(first, "defaults", [*batches, "--train-batch-size", "16", "--data", data], 150)
    if "train" in args.groups and train_and_submit(check, work, medico, device, size, args, data, test_images):
        exported = {kind: work / f"exported.{kind}" for kind in ("onnx", "torchscript")}
        for kind, path in exported.items():
            check.step(f"export {first} {kind}", [*medico, "export", "latest", "--format", kind, "--images",
                                                   test_images, "--out", str(path)], 120)
        if all(path.is_file() for path in exported.values()):
            result = work / "bench-exported.json"
            check.step(f"bench trained {first} exported", [
                sys.executable, str(REPO / "scripts" / "gpu_exported.py"), "latest", "--torchscript",
                str(exported["torchscript"]), "--onnx", str(exported["onnx"]), "--images", test_images, *device,
                "--json", str(result)], 120, result)
    if "bench" in args.groups:
        for model in args.models:
            bench(model, "fp32", ["--precision", "fp32", *batches], 90)
            bench(model, "compiled", ["--compile", "--batch-size", "1", "--batch-size", "32"], 150)
        for model in others:
            bench(model, "defaults", [*batches, "--train-batch-size", "16"], 120)
    if "recipes" in args.groups:
        compare_recipes(check, work, medico, device, size, args, data)
    if "tests" in args.groups:
        parallel = ["-n", "12"] if importlib.util.find_spec("xdist") else []
        check.step("fast tests", [sys.executable, "-m", "pytest", "-q", "--maxfail=25", "-p", "no:cacheprovider",
                                  *parallel], 180, cwd=REPO)
    check.report["finished"] = True
    check.save()
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
