"""Scoring speed: ``medico score`` of a 160-mask archive as a whole command, and the challenge worker's validation and
scoring of one archive in its own process. Prints numbers (medians over runs); asserts nothing.

    python scripts/bench_scoring.py                                # truth and archive built from real Kvasir-SEG masks
    python scripts/bench_scoring.py --baseline /path/to/older/checkout    # the same numbers for older code, and ratios
    python scripts/bench_scoring.py --archive T_task1_run1.zip --truth TRUTH
    python scripts/bench_scoring.py --padded cap --count 10 --baseline OLD    # issue 23's padded PNGs, older code
    python scripts/bench_scoring.py --padded limits        # the most padding the validator accepts: still valid

The built truth is ``--count`` Kvasir-SEG mask files as they are (JPEG); the archive holds each mask shifted by 8
pixels as a 0/255 PNG, as ``medico predict`` writes them (so scores are not all 1). ``--padded cap`` pads each PNG
with empty ancillary chunks up to the validator's size cap for its mask (issue 23's hostile archive: valid to older
medico, a few hundred kB zipped, seconds per mask to open); ``--padded limits`` with as many empty chunks as the
validator accepts. An invalid archive is timed all the same, and said to be. Every number comes from a fresh
``python`` process running the code under ``--code`` (default: this checkout) or ``--baseline``; the worker's figure
is the truth's check (:meth:`Truth.read <medico.submission.scorer.Truth.read>`, which hashes it) plus validation and
scoring as the worker does them (in a child process per archive, the truth decoded in the worker before it forks;
older code: ``score_for_challenge`` in the worker's own process), the first archive of a process (its truth decoded)
apart from the next ones.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KVASIR = Path(os.environ.get("MEDICO_SHARED_DATA", REPO.parent / "shared" / "data")) / "kvasir-seg"
SHIFT = 8
"""Pixels each built prediction is shifted by (down and right) from its ground truth."""

# Run in a child process under the code measured (its PYTHONPATH); prints one JSON line.
_WORKER = """
import json, resource, sys, time
from pathlib import Path
started = time.perf_counter()
from medico.challenge.partition import draw_partition
from medico.challenge.scoring import score_for_challenge
from medico.challenge.settings import Settings
from medico.submission.scorer import Truth
try:  # the worker's own path: a child per archive, within the challenge's limits
    from medico.challenge.bounded import score_bounded
except ImportError:  # older code scored in the worker's own process
    score_bounded = None
imported = time.perf_counter() - started
archive, folder, repeats = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
times = []
for _ in range(repeats + 1):
    start = time.perf_counter()
    truth = Truth.read(folder)
    parts = draw_partition(truth.sizes, 0.5, seed=0)
    if score_bounded is None:
        outcome = score_for_challenge(archive, truth, parts)
    else:
        truth.decode()
        outcome = score_bounded(archive, truth, parts, Settings(name="bench", truth=folder, images=folder),
                                name="bench")
    times.append(time.perf_counter() - start)
print(json.dumps({"import": imported, "first": times[0], "next": times[1:], "torch": "torch" in sys.modules,
                  "valid": outcome.parts is not None, "messages": list(outcome.messages[:2]),
                  "child": score_bounded is not None,
                  "peak_mb": max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF,
                                                                                  resource.RUSAGE_CHILDREN)) / 1024}))
"""


def _chunk(kind: bytes) -> bytes:
    return struct.pack(">I", 0) + kind + struct.pack(">I", zlib.crc32(kind))


def _padded(png: bytes, size: int) -> bytes:
    """``png`` with empty ancillary chunks after its header, up to ``size`` bytes: of two types in a seeded random
    order, so that the member deflates about 70x, under the validator's zip-bomb ratio (100x)."""
    empty = [_chunk(b"zzZz"), _chunk(b"zzZy")]
    rng = random.Random(0)
    count = (size - len(png)) // len(empty[0])
    return png[:33] + b"".join(empty[rng.random() < 0.1] for _ in range(count)) + png[33:]


def _padded_within_limits(png: bytes) -> bytes:
    """``png`` with as many empty chunks as this validator accepts (:mod:`medico.submission.headers`): the most
    ancillary ones, then empty image-data chunks up to the most chunks in all."""
    from medico.submission.headers import MAX_METADATA_CHUNKS, MAX_PNG_CHUNKS

    chunks = png.count(b"IDAT") + 2  # IHDR, IDAT, IEND (mask_png writes one IDAT)
    ancillary = _chunk(b"zzZz") * MAX_METADATA_CHUNKS
    return png[:33] + ancillary + png[33:-12] + _chunk(b"IDAT") * (MAX_PNG_CHUNKS - chunks - MAX_METADATA_CHUNKS) \
        + png[-12:]


def build(data: Path, count: int, folder: Path, padded: str | None = None) -> tuple[Path, Path]:
    """``(archive, truth)`` in ``folder``: the first ``count`` Kvasir-SEG masks and their shifted PNG predictions,
    ``padded`` when asked: up to the validator's size cap for the mask (``cap``) or to its chunk limits (``limits``)."""
    sys.path.insert(0, str(REPO))
    import numpy as np

    from medico.data.masks import read_mask
    from medico.submission import mask_png
    from medico.submission.validator import max_member_bytes

    masks = sorted((data / "masks").glob("*.jpg"))[:count]
    if len(masks) < count:
        raise SystemExit(f"--data {data}: {len(masks)} masks in masks/, expected at least {count}")
    truth, archive = folder / "truth", folder / "T_task1_run1.zip"
    truth.mkdir()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        for path in masks:
            shutil.copy2(path, truth / path.name)
            shifted = np.roll(read_mask(path), (SHIFT, SHIFT), axis=(0, 1))
            png = mask_png(shifted)
            if padded == "cap":
                png = _padded(png, max_member_bytes(shifted.shape[1], shifted.shape[0]) - 64)
            elif padded == "limits":
                png = _padded_within_limits(png)
            handle.writestr(f"{path.stem}.png", png)
    return archive, truth


def _env(code: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(code), "PYTHONDONTWRITEBYTECODE": "1"}


def _run(command: list[str], code: Path, cwd: Path) -> tuple[float, float, str]:
    """Wall and CPU (user + system) seconds of one child process, and its stdout; a failure stops the benchmark (an
    invalid archive's exit status 1 is no failure)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=_env(code), capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} (code {code}) failed:\n{result.stdout}{result.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), result.stdout


def command_times(code: Path, archive: Path, truth: Path, repeats: int, work: Path) -> list[tuple[float, float]]:
    """``medico score`` run ``repeats`` times, each into a fresh leaderboard database."""
    runs = []
    for index in range(repeats):
        db = work / f"lb-{code.name}-{index}"
        command = [sys.executable, "-m", "medico", "score", str(archive), "--truth", str(truth), "--team", "T"]
        runs.append(_run([*command, "--db", str(db)], code, archive.parent)[:2])
    return runs


def worker_times(code: Path, archive: Path, truth: Path, repeats: int) -> dict:
    stdout = _run([sys.executable, "-c", _WORKER, str(archive), str(truth), str(repeats)], code, archive.parent)[2]
    return json.loads(stdout.strip().splitlines()[-1])


def torch_import(repeats: int) -> float:
    return statistics.median(_run([sys.executable, "-c", "import torch"], REPO, REPO)[0] for _ in range(repeats))


def measure(code: Path, archive: Path, truth: Path, repeats: int, work: Path) -> dict:
    runs = command_times(code, archive, truth, repeats, work)
    worker = worker_times(code, archive, truth, repeats)
    return {
        "code": str(code),
        "command_wall_s": statistics.median(wall for wall, _ in runs),
        "command_cpu_s": statistics.median(cpu for _, cpu in runs),
        "worker_import_s": worker["import"],
        "worker_first_s": worker["first"],
        "worker_next_s": statistics.median(worker["next"]),
        "worker_imports_torch": worker["torch"],
        "valid": worker["valid"],
        "messages": worker["messages"],
        "worker_child": worker["child"],
        "worker_peak_mb": worker["peak_mb"],
    }


def _report(label: str, ours: float, theirs: float | None) -> str:
    line = f"{label:58s} {ours:6.2f} s"
    return line + (f"   baseline {theirs:6.2f} s  ({theirs / ours:4.1f}x)" if theirs is not None else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=KVASIR, help="Kvasir-SEG folder (masks/ inside)")
    parser.add_argument("--count", type=int, default=160, help="masks in the built archive (Medico 2020: 160)")
    parser.add_argument("--padded", choices=("cap", "limits"),
                        help="pad each built PNG with empty chunks: up to the size cap, or to the chunk limits")
    parser.add_argument("--archive", type=Path, help="score this archive instead of a built one (with --truth)")
    parser.add_argument("--truth", type=Path, help="its ground-truth folder")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each measurement (medians are printed)")
    parser.add_argument("--code", type=Path, default=REPO, help="checkout whose medico is measured")
    parser.add_argument("--baseline", type=Path, help="an older checkout measured the same way, for ratios")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    if (args.archive is None) != (args.truth is None):
        parser.error("--archive and --truth go together")
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as temporary:
        work = Path(temporary)
        if args.archive is None:
            archive, truth = build(args.data, args.count, work, args.padded)
        else:  # a copy: the command writes its results beside the archive
            archive = work / args.archive.name
            shutil.copy2(args.archive, archive)
            truth = args.truth.resolve()
        with zipfile.ZipFile(archive) as handle:
            masks = len(handle.namelist())
        zipped = archive.stat().st_size
        ours = measure(args.code.resolve(), archive, truth, args.repeats, work)
        base = measure(args.baseline.resolve(), archive, truth, args.repeats, work) if args.baseline else None
        torch_s = torch_import(3)
    load = os.getloadavg()[0]
    print(f"{masks} masks, {zipped:,} bytes zipped; {os.cpu_count()} CPUs, load average {load:.1f} (a busy machine "
          "inflates every figure)")
    for label, figures in (("this code", ours), ("baseline", base)):
        if figures is not None:
            verdict = "valid" if figures["valid"] else f"invalid ({'; '.join(figures['messages'])})"
            print(f"{label}: the archive is {verdict}")
    print(_report(f"medico score, whole command (median of {args.repeats})", ours["command_wall_s"],
                  base and base["command_wall_s"]))
    print(_report("  its CPU time (user + system)", ours["command_cpu_s"], base and base["command_cpu_s"]))
    print(_report("worker: imports of the scoring path", ours["worker_import_s"], base and base["worker_import_s"]))
    print(_report("worker: validate + score, first archive of the process", ours["worker_first_s"],
                  base and base["worker_first_s"]))
    print(_report("worker: validate + score, next archives (median)", ours["worker_next_s"],
                  base and base["worker_next_s"]))
    print(_report("import torch alone (median of 3)", torch_s, None))
    print(f"the worker scores in a child per archive: {ours['worker_child']}"
          + (f" (baseline: {base['worker_child']})" if base else ""))
    print(f"peak resident memory of the worker or a child: {ours['worker_peak_mb']:.0f} MB"
          + (f" (baseline: {base['worker_peak_mb']:.0f} MB)" if base else ""))
    print(f"the worker's scoring path imports torch: {ours['worker_imports_torch']}"
          + (f" (baseline: {base['worker_imports_torch']})" if base else ""))
    if args.json is not None:
        args.json.write_text(json.dumps({"ours": ours, "baseline": base, "torch_import_s": torch_s, "masks": masks,
                                         "load_average": load}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
