"""Load benchmark of a hosted challenge: teams upload real-size archives while many clients read the leaderboard.

Sets up a challenge in a temporary folder (truth: the first ``--masks`` Kvasir-SEG masks and their images, linked,
never copied), adds ``--teams`` teams, starts ``medico serve`` (or waits for a server the organiser starts on
``--dir`` at ``--url``), then at once: the teams send ``--archives`` archives between them, all in parallel (some
invalid, some past a team's ``--max-total`` that must be answered 429), while ``--readers`` clients read ``GET /`` and
``GET /api/leaderboard`` for ``--duration`` seconds. It reports leaderboard requests/s and latency percentiles
(overall and per endpoint), archives scored per minute (from upload to a final state), and the uploads' answers, and
checks that nothing was lost: every accepted upload ends scored or invalid as its archive deserves and reads so, no
team passed its limit, and the database and the leaderboard agree with what the clients saw. Then two attacks of a
hostile participant: ``--bogus`` made-up tokens sent at once, every second for ``--bogus-seconds``, while a real team
reads its own status back to back (its latency alone first, then under the attack: the target is p99 under 0.5 s),
and an upload whose body is held back across ``medico challenge close`` (it must be refused and leave nothing).
Exits 1 on a problem.

    PYTHONPATH=. python scripts/challenge_load.py --out load.json            # the full run: about a minute or two
    PYTHONPATH=. python scripts/challenge_load.py --duration 5 --readers 10 --archives 10 --masks 20   # a quick one

Each reader is a client of its own (one connection, as a browser has) asking about once a second (``--pause``);
``--pause 0`` asks back to back, which measures the client as much as the server: timing is taken by the client
(httpx, one asyncio loop), on the same cores as the server. The report says how much CPU each used while reading.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import os
import random
import secrets
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from medico.challenge.database import DATABASE_FILE
from medico.challenge.folder import UPLOADS, Challenge, init_challenge
from medico.challenge.phase import close_challenge
from medico.challenge.settings import Settings
from medico.challenge.teams import add_team
from medico.challenge.throttle import BURST, PER_SECOND
from medico.data.io import list_images
from medico.data.masks import read_mask
from medico.errors import MedicoError
from medico.submission import mask_png

REPO = Path(__file__).resolve().parents[1]
KVASIR = Path(os.environ.get("MEDICO_SHARED_DATA", REPO.parent / "shared" / "data")) / "kvasir-seg"
BOARD = ("/", "/api/leaderboard")
FINAL = ("scored", "invalid")
STATUS = "/api/submissions"
TARGET_P99_S = 0.5
"""A real team's status under made-up tokens: p99 under this (printed, never a failed check: timings vary)."""


# --- the data: a test set and archives that score differently ----------------------------------------------------


def link_test_set(folder: Path, masks: Path, images: Path, count: int) -> tuple[Path, Path]:
    """``(truth, images)`` folders in ``folder`` linking the first ``count`` masks that have an image."""
    pictures = {path.stem: path for path in list_images(images)}
    chosen = [path for path in list_images(masks) if path.stem in pictures][:count]
    if len(chosen) < count:
        raise SystemExit(f"--truth {masks}: only {len(chosen)} masks have an image in {images}, {count} asked")
    truth, linked = folder / "truth", folder / "images"
    truth.mkdir(parents=True)
    linked.mkdir()
    for mask in chosen:
        (truth / mask.name).symlink_to(mask.resolve())
        (linked / pictures[mask.stem].name).symlink_to(pictures[mask.stem].resolve())
    return truth, linked


def _variants(mask: np.ndarray) -> list[np.ndarray]:
    """The truth and five plausible mistakes on it: shifted, grown, shrunk, half missing."""
    height, width = mask.shape
    step = max(width // 25, 1)
    shifted = np.roll(mask, step, axis=1)
    lower = np.roll(mask, max(height // 12, 1), axis=0)
    moves = [np.roll(mask, shift, axis) for axis in (0, 1) for shift in (-step, step)]
    grown, shrunk = np.logical_or.reduce(moves), np.logical_and.reduce(moves)
    half = mask.copy()
    half[: height // 2] = False
    return [mask, shifted, lower, grown, shrunk, half]


@dataclass
class Archive:
    """One upload: its bytes, whether the server should score it (else: find it invalid), and what it is."""

    index: int
    team: str
    body: bytes
    valid: bool
    kind: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as handle:
        for name, data in members.items():
            handle.writestr(name, data)
    return buffer.getvalue()


def make_archives(truth: Path, teams: list[str], count: int, invalid_every: int) -> list[Archive]:
    """``count`` distinct archives, dealt to ``teams`` in turn; every ``invalid_every``-th one breaks a rule (a
    missing mask, a mask of the wrong size, or no zip at all), the others mix each image's mask variants."""
    masks = {path.stem: read_mask(path) for path in list_images(truth)}
    encoded: dict[tuple[str, int], bytes] = {}

    def png(name: str, variant: int) -> bytes:
        if (name, variant) not in encoded:
            encoded[name, variant] = mask_png(_variants(masks[name])[variant])
        return encoded[name, variant]

    archives, seen = [], set()
    for index in range(count):
        rng = np.random.default_rng(index)
        while True:
            choice = {name: int(rng.choice(6, p=[0.5, 0.1, 0.1, 0.1, 0.1, 0.1])) for name in masks}
            if tuple(choice.values()) not in seen:
                seen.add(tuple(choice.values()))
                break
        members = {f"{name}.png": png(name, variant) for name, variant in choice.items()}
        kind, valid = "mixed masks", True
        if invalid_every and index % invalid_every == invalid_every - 1:
            kind, valid = ("a mask missing", "a mask of the wrong size", "not a zip")[index // invalid_every % 3], False
            first = next(iter(masks))
            if kind == "a mask missing":
                del members[f"{first}.png"]
            elif kind == "a mask of the wrong size":
                members[f"{first}.png"] = mask_png(masks[first][:, 1:])
        body = os.urandom(len(members) * 64) if kind == "not a zip" else _zip(members)
        archives.append(Archive(index, teams[index % len(teams)], body, valid, kind))
    return archives


# --- the server ----------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_up(url: str, seconds: float, server: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server is not None and server.poll() is not None:
            raise SystemExit(f"medico serve exited with {server.returncode} before answering")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/api/leaderboard", timeout=5).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"{url}: no challenge server answered within {seconds:g} s")


@contextlib.contextmanager
def medico_serve(folder: Path, log: Path) -> Iterator[tuple[str, int | None]]:
    """``python -m medico serve folder`` of this checkout on a free port; yields its URL and process id, stops it as
    Ctrl+C does."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "medico", "serve", str(folder), "--port", str(port)]
    with log.open("wb") as output:
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_up(url, 120, server)
        yield url, server.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


# --- the load ------------------------------------------------------------------------------------------------------


@dataclass
class Load:
    """What the clients saw: reader samples (path, start, seconds, status or the client's error), upload answers
    (archive, status, body, when), the uploads still being sent, each accepted upload's final state and when it was
    seen, its state read back alone, and the leaderboard at the end."""

    sending: list[Archive]
    readers: list[tuple[str, float, float, int | str]] = field(default_factory=list)
    answers: list[tuple[Archive, int, dict[str, Any], float]] = field(default_factory=list)
    final: dict[int, tuple[str, float]] = field(default_factory=dict)
    read_back: dict[int, str] = field(default_factory=dict)
    start: float = 0.0
    board: dict[str, Any] = field(default_factory=dict)
    cpu: dict[str, float | None] = field(default_factory=dict)


async def _reader(client: httpx.AsyncClient, load: Load, until: float, pause: float, seed: int) -> None:
    """One client reading the leaderboard until ``until``, ``pause`` seconds apart on average (0: at once)."""
    rng = random.Random(seed)
    await asyncio.sleep(rng.uniform(0, pause or 0.01))  # readers do not arrive in lockstep
    while time.perf_counter() < until:
        path = rng.choice(BOARD)
        start = time.perf_counter()
        status: int | str
        try:
            status = (await client.get(path)).status_code
        except httpx.HTTPError as error:
            status = type(error).__name__
        load.readers.append((path, start, time.perf_counter() - start, status))
        if pause:
            await asyncio.sleep(rng.uniform(0.5 * pause, 1.5 * pause))


async def _upload(client: httpx.AsyncClient, token: str, archive: Archive, load: Load) -> None:
    try:
        answer = await client.post("/api/submissions", content=archive.body, headers=_bearer(token))
        status, body = answer.status_code, answer.json()
    except (httpx.HTTPError, ValueError) as error:
        status, body = 0, {"error": repr(error)}
    load.answers.append((archive, status, body, time.perf_counter()))


async def _follow(client: httpx.AsyncClient, token: str, team: str, load: Load, poll: float, until: float) -> None:
    """Poll the team's own list until its uploads are answered and each accepted one is final, then read each one
    back alone."""
    headers = _bearer(token)

    def accepted() -> set[int]:
        return {body["id"] for archive, status, body, _ in load.answers if archive.team == team and status == 202}

    while time.perf_counter() < until:
        pending = accepted() - set(load.final)
        if not pending and not any(archive.team == team for archive in load.sending):
            break
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            for row in (await client.get("/api/submissions", headers=headers)).json()["submissions"]:
                if row["state"] in FINAL and row["id"] in pending:
                    load.final[row["id"]] = (row["state"], time.perf_counter())
        await asyncio.sleep(poll)
    for number in sorted(accepted()):
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            answer = await client.get(f"/api/submissions/{number}", headers=headers)
            load.read_back[number] = answer.json()["state"] if answer.status_code == 200 else str(answer.status_code)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _cpu_seconds(pid: int | None) -> float | None:
    """CPU seconds process ``pid`` used so far (None: not known, off Linux or not started here)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_load(
    url: str, server: int | None, tokens: dict[str, str], archives: list[Archive], args: argparse.Namespace
) -> Load:
    """The readers for ``args.duration`` seconds and, from the same moment, every upload, then the wait for scores;
    the CPU the server process (``server``: its id, when known) and this client used while the readers read."""
    load = Load(list(archives))
    tls = ssl.create_default_context()  # made once: each client making its own would stall the loop for seconds
    async with contextlib.AsyncExitStack() as stack:
        teams = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=120, verify=tls))
        readers = [  # one client, so one connection, per reader, as each browser has its own
            await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=60, verify=tls))
            for _ in range(args.readers)
        ]
        load.start = time.perf_counter()
        before = (time.process_time(), _cpu_seconds(server))
        until = load.start + args.duration

        async def upload(archive: Archive) -> None:
            await _upload(teams, tokens[archive.team], archive, load)
            load.sending.remove(archive)

        tasks = [upload(archive) for archive in archives]
        give_up = load.start + args.duration + args.score_timeout
        tasks += [_follow(teams, token, team, load, args.poll, give_up) for team, token in tokens.items()]
        teams_done = asyncio.gather(*tasks)
        await asyncio.gather(*(_reader(client, load, until, args.pause, seed) for seed, client in enumerate(readers)))
        window = time.perf_counter() - load.start
        after = (time.process_time(), _cpu_seconds(server))
        load.cpu = {
            "client_cores": round((after[0] - before[0]) / window, 2),
            "server_cores": round((after[1] - before[1]) / window, 2) if None not in (before[1], after[1]) else None,
            "load_average": round(os.getloadavg()[0], 2),
        }
        await teams_done
        load.board = (await teams.get("/api/leaderboard")).json()
    return load


# --- the attacks: made-up tokens, and a body held back across the close -------------------------------------------


@dataclass
class Attacks:
    """What the attacks saw: the real team's status reads (seconds, status) alone and under made-up tokens, the
    made-up tokens' answers and how long they were sent, and the held-back upload's answer and what it left."""

    alone: list[tuple[float, int | str]] = field(default_factory=list)
    attacked: list[tuple[float, int | str]] = field(default_factory=list)
    bogus: Counter[int | str] = field(default_factory=Counter)
    bogus_seconds: float = 0.0
    late: dict[str, Any] = field(default_factory=dict)


async def _status_reads(client: httpx.AsyncClient, token: str, until: float, samples: list) -> None:
    """One team reading its own status back to back until ``until``."""
    while time.perf_counter() < until:
        start = time.perf_counter()
        status: int | str
        try:
            status = (await client.get(STATUS, headers=_bearer(token))).status_code
        except httpx.HTTPError as error:
            status = type(error).__name__
        samples.append((time.perf_counter() - start, status))


async def _bursts(url: str, count: int, until: float, answers: Counter[int | str]) -> None:
    """``count`` requests with made-up tokens (well formed, unknown ids) at once, every second until ``until``."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        while time.perf_counter() < until:
            started = time.perf_counter()
            tokens = [f"mc_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}" for _ in range(count)]
            asked = (client.get(STATUS, headers=_bearer(token)) for token in tokens)
            sent = await asyncio.gather(*asked, return_exceptions=True)
            for answer in sent:
                answers[answer.status_code if isinstance(answer, httpx.Response) else type(answer).__name__] += 1
            await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - started)))


async def bogus_tokens(url: str, token: str, args: argparse.Namespace, attacks: Attacks) -> None:
    """The real team ``token`` reads its status for ``args.bogus_seconds`` alone, then as long again while the bursts
    run (from this client's address, in a thread of their own so their client work delays the team's reads little)."""
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        await _status_reads(client, token, time.perf_counter() + args.bogus_seconds, attacks.alone)
        start = time.perf_counter()
        until = start + args.bogus_seconds
        bursts = asyncio.create_task(asyncio.to_thread(asyncio.run, _bursts(url, args.bogus, until, attacks.bogus)))
        await _status_reads(client, token, until, attacks.attacked)
        await bursts
        attacks.bogus_seconds = time.perf_counter() - start


def _receiving(folder: Path) -> bool:
    return any(path.name.startswith(".upload-") for path in (folder / UPLOADS).iterdir())


def _submissions(folder: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{folder / DATABASE_FILE}?mode=ro", uri=True)) as connection:
        return int(connection.execute("SELECT COUNT(*) FROM submissions").fetchone()[0])


async def held_back_across_close(url: str, folder: Path, token: str, body: bytes, attacks: Attacks) -> None:
    """A team with uploads left sends its upload's first byte, waits for the close (as ``medico challenge close``
    does it), reads its status and the private board, then sends the rest: the answer, and what the server kept."""
    release = asyncio.Event()

    async def held_back() -> AsyncIterator[bytes]:
        yield body[:1]
        await release.wait()
        yield body[1:]

    before = _submissions(folder)
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        sending = asyncio.create_task(client.post("/api/submissions", content=held_back(), headers=_bearer(token)))
        deadline = time.perf_counter() + 60
        while not _receiving(folder) and not sending.done() and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        closed = close_challenge(Challenge.open(folder), datetime.now(timezone.utc))
        status = (await client.get(STATUS, headers=_bearer(token))).json().get("phase")
        part = (await client.get("/api/leaderboard")).json().get("part")
        release.set()
        try:
            answer = await sending
            attacks.late = {"status": answer.status_code, "error": answer.json().get("error")}
        except (httpx.HTTPError, ValueError) as error:
            attacks.late = {"status": 0, "error": repr(error)}
    attacks.late |= {
        "closed": closed.isoformat(),
        "seen_before_the_rest": {"phase": status, "board": part},
        "stored": _submissions(folder) - before,
        "partial_files_left": _receiving(folder),
    }


# --- the report and the checks -------------------------------------------------------------------------------------


def _percentiles(seconds: list[float]) -> dict[str, float | int]:
    if not seconds:
        return {"count": 0}
    values = np.asarray(seconds) * 1000
    return {
        "count": len(values),
        **{f"p{q}_ms": round(float(np.percentile(values, q)), 2) for q in (50, 95, 99)},
        "max_ms": round(float(values.max()), 2),
    }


def summarise(load: Load, args: argparse.Namespace) -> dict[str, Any]:
    """The figures: reader throughput and latency, upload answers, scoring throughput."""
    window = max(max((s + d for _, s, d, _ in load.readers), default=load.start) - load.start, 1e-9)
    latency = {"all": _percentiles([d for _, _, d, _ in load.readers])}
    for path in BOARD:
        latency[path] = _percentiles([d for p, _, d, _ in load.readers if p == path])
    accepted = {body["id"]: when for _, status, body, when in load.answers if status == 202}
    finished = [when for number, (_, when) in load.final.items() if number in accepted]
    span = (max(finished) - min(accepted.values())) if finished else 0.0
    waits = [load.final[n][1] - accepted[n] for n in accepted if n in load.final]
    return {
        "settings": {k: v for k, v in vars(args).items() if isinstance(v, int | float | str | None)},
        "leaderboard": {
            "requests": len(load.readers),
            "requests_per_s": round(len(load.readers) / window, 1),
            "errors": sum(status != 200 for *_, status in load.readers),
            "latency": latency,
            "slowest": [
                {"path": path, "at_s": round(start - load.start, 2), "ms": round(seconds * 1000, 1)}
                for path, start, seconds, _ in sorted(load.readers, key=lambda sample: -sample[2])[:10]
            ],
            "cpu": load.cpu,
        },
        "uploads": dict(sorted(Counter(str(status) for _, status, _, _ in load.answers).items())),
        "scoring": {
            "accepted": len(accepted),
            "final": len(finished),
            "scored": sum(state == "scored" for state, _ in load.final.values()),
            "invalid": sum(state == "invalid" for state, _ in load.final.values()),
            "archives_per_minute": round(len(finished) / span * 60, 2) if span else None,
            "upload_to_final_s": {"p50": round(float(np.median(waits)), 2), "max": round(max(waits), 2)}
            if waits
            else {},
            "worker_s_per_archive": worker_seconds(args.dir),
        },
    }


def worker_seconds(folder: Path) -> float | None:
    """The median time between two scores the worker recorded (the queue was never empty under load): about what
    validating and scoring one archive takes it."""
    with contextlib.closing(sqlite3.connect(f"file:{folder / DATABASE_FILE}?mode=ro", uri=True)) as connection:
        times = sorted({row[0] for row in connection.execute("SELECT scored FROM scores")})
    moments = [datetime.fromisoformat(t).timestamp() for t in times]
    gaps = np.diff(moments)
    return round(float(np.median(gaps)), 3) if len(gaps) else None


def check(load: Load, archives: list[Archive], tokens: dict[str, str], args: argparse.Namespace) -> list[str]:
    """What went wrong: a lost or wrongly judged upload, a limit passed, the database or leaderboard disagreeing."""
    problems = []
    accepted: dict[int, Archive] = {}
    per_team: Counter[str] = Counter()
    for archive, status, body, _ in load.answers:
        if status == 202:
            accepted[body["id"]] = archive
            per_team[archive.team] += 1
        elif status != 429:
            problems.append(f"upload {archive.index} of {archive.team}: answered {status} {body}")
    if len(load.answers) != len(archives):
        problems.append(f"{len(archives) - len(load.answers)} uploads got no answer")
    expected_refused = sum(max(n - args.max_total, 0) for n in Counter(a.team for a in archives).values())
    refused = sum(status == 429 for _, status, _, _ in load.answers)
    if refused < expected_refused:
        problems.append(f"{refused} uploads answered 429, at least {expected_refused} were over a limit")
    problems += [
        f"team {t}: {n} uploads accepted, the limit is {args.max_total}"
        for t, n in per_team.items()
        if n > args.max_total
    ]
    sent = Counter(archive.team for archive in archives)
    problems += [  # a team's own uploads at once are never taken for an attack on its token
        f"team {t}: {per_team[t]} uploads accepted of {n} sent, the limit allows {args.max_total}"
        for t, n in sent.items()
        if per_team[t] < min(n, args.max_total)
    ]
    for number, archive in sorted(accepted.items()):
        state = load.final.get(number, ("not final", 0))[0]
        wanted = "scored" if archive.valid else "invalid"
        if state != wanted:
            problems.append(f"submission {number} ({archive.kind}): {state}, expected {wanted}")
        if load.read_back.get(number) != state:
            problems.append(f"submission {number}: reads back as {load.read_back.get(number)}, listed as {state}")
    problems += _check_database(args.dir, accepted, load, tokens)
    errors = Counter(status for *_, status in load.readers if status != 200)
    problems += [
        f"{n} leaderboard reads " + (f"answered {status}" if isinstance(status, int) else f"failed: {status}")
        for status, n in errors.items()
    ]
    return problems


def _check_database(folder: Path, accepted: dict[int, Archive], load: Load, tokens: dict[str, str]) -> list[str]:
    problems = []
    with contextlib.closing(sqlite3.connect(f"file:{folder / DATABASE_FILE}?mode=ro", uri=True)) as connection:
        connection.row_factory = sqlite3.Row
        rows = {
            row["id"]: row
            for row in connection.execute(
                "SELECT s.id, s.state, s.sha256, t.name FROM submissions s JOIN teams t ON t.id = s.team_id"
            )
        }
        best = dict(
            connection.execute(
                "SELECT t.name, MAX(sc.iou) FROM submissions s JOIN teams t ON t.id = s.team_id "
                "JOIN scores sc ON sc.submission_id = s.id AND sc.round = s.round "
                "WHERE s.state = 'scored' AND sc.part = 'public' GROUP BY t.name"
            ).fetchall()
        )
    if set(rows) != set(accepted):
        problems.append(f"the database holds submissions {sorted(set(rows) ^ set(accepted))} no 202 answered or lost")
    for number, archive in accepted.items():
        row = rows.get(number)
        if row is None:
            continue
        if (row["name"], row["sha256"]) != (archive.team, archive.sha256):
            problems.append(f"submission {number}: stored as {row['name']}'s {row['sha256'][:12]}, not the upload")
        if row["state"] != load.final.get(number, ("",))[0]:
            problems.append(f"submission {number}: {row['state']} in the database, {load.final.get(number)} seen")
        if not (folder / UPLOADS / f"{number}.zip").is_file():
            problems.append(f"submission {number}: its archive is missing from {UPLOADS}/")
    stray = sorted(p.name for p in (folder / UPLOADS).iterdir() if p.stem not in {str(n) for n in rows})
    if stray:
        problems.append(f"{len(stray)} files left in {UPLOADS}/ that are no submission: {stray[:3]}")
    shown = {row["team"]: row["iou"] for row in load.board.get("rows", [])}
    if shown != best:
        problems.append(f"the leaderboard shows {shown}, the database's best public IoU per team is {best}")
    return problems


def summarise_attacks(attacks: Attacks, args: argparse.Namespace) -> dict[str, Any]:
    """The attacks' figures: the made-up tokens' answers, the real team's status latency alone and under them, and the
    held-back upload's answer and what it left."""
    bogus = None
    if args.bogus:
        bogus = {
            "per_burst": args.bogus,
            "seconds": round(attacks.bogus_seconds, 2),
            "answers": {str(status): n for status, n in sorted(attacks.bogus.items(), key=str)},
            "status_alone": _percentiles([seconds for seconds, _ in attacks.alone]),
            "status_under_bogus": _percentiles([seconds for seconds, _ in attacks.attacked]),
            "target_p99_ms": TARGET_P99_S * 1000,
        }
    return {"bogus_tokens": bogus, "held_back_across_close": attacks.late}


def check_attacks(attacks: Attacks, args: argparse.Namespace) -> list[str]:
    """What went wrong in the attacks: a real team's status not answered 200, a made-up token answered otherwise than
    401 or 429 or hashed past the throttle, a held-back upload accepted or leaving anything."""
    problems = []
    failed = Counter(status for _, status in attacks.alone + attacks.attacked if status != 200)
    problems += [f"{n} of the real team's status reads answered {status}" for status, n in failed.items()]
    odd = {status: n for status, n in attacks.bogus.items() if status not in (401, 429)}
    if odd:
        problems.append(f"made-up tokens answered {odd}, expected 401 or 429")
    hashed = BURST + PER_SECOND * (attacks.bogus_seconds + 1)
    if args.bogus and attacks.bogus[401] > hashed:
        problems.append(f"{attacks.bogus[401]} made-up tokens were hashed (401), the throttle allows about {hashed:g}")
    late = attacks.late
    if late.get("status") != 403 or late.get("stored") or late.get("partial_files_left"):
        problems.append(
            f"an upload held back across the close: answered {late.get('status')} {late.get('error')!r}, "
            f"{late.get('stored')} submissions stored, partial files left: {late.get('partial_files_left')}"
        )
    return problems


def _attack_lines(attacks: dict[str, Any]) -> list[str]:
    lines = []
    bogus = attacks["bogus_tokens"]
    if bogus is not None:
        answers = ", ".join(f"{status}: {n}" for status, n in bogus["answers"].items())
        lines += [
            f"made-up tokens: {bogus['per_burst']} at once every second for {bogus['seconds']:.1f} s, answered "
            f"{answers} (hashed at most {BURST} at once, then {PER_SECOND:g} a second, per address)",
            f"  {'a team status':<18}{'count':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}",
        ]
        for label, key in (("alone", "status_alone"), ("under made-up", "status_under_bogus")):
            figures = bogus[key]
            values = [figures.get(k, float("nan")) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")]
            lines.append(f"  {label:<18}{figures['count']:>7}" + "".join(f"{v:>9.1f}" for v in values))
        met = bogus["status_under_bogus"].get("p99_ms", float("inf")) < bogus["target_p99_ms"]
        verdict = "met" if met else "MISSED"
        lines.append(f"  target: p99 under {bogus['target_p99_ms']:g} ms under made-up tokens: {verdict}")
    late = attacks["held_back_across_close"]
    seen = late.get("seen_before_the_rest", {})
    lines.append(
        f"upload held back across the close ({late.get('closed')}): the team saw phase {seen.get('phase')} and the "
        f"{seen.get('board')} board, then sent the rest: answered {late.get('status')} {late.get('error')!r}; "
        f"{late.get('stored')} stored, partial files left: {'yes' if late.get('partial_files_left') else 'none'}"
    )
    return lines


def table(summary: dict[str, Any], problems: list[str]) -> str:
    board, scoring = summary["leaderboard"], summary["scoring"]
    lines = [
        f"leaderboard: {board['requests']} requests, {board['requests_per_s']}/s, {board['errors']} errors",
        f"  {'endpoint':<18}{'count':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}",
    ]
    for path, figures in board["latency"].items():
        values = [figures.get(k, float("nan")) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")]
        lines.append(f"  {path:<18}{figures['count']:>7}" + "".join(f"{v:>9.1f}" for v in values))
    cpu = board["cpu"]
    lines.append(
        f"  while reading: the server process used {cpu['server_cores']} cores, this client {cpu['client_cores']}, "
        f"load average {cpu['load_average']} on {os.cpu_count()} cores"
    )
    uploads = ", ".join(f"{status}: {n}" for status, n in summary["uploads"].items())
    lines += [
        f"uploads answered: {uploads}",
        f"scoring: {scoring['final']} of {scoring['accepted']} accepted uploads final ({scoring['scored']} scored, "
        f"{scoring['invalid']} invalid), {scoring['archives_per_minute']} archives/min from upload to final, "
        f"upload to final {scoring['upload_to_final_s']}, worker about {scoring['worker_s_per_archive']} s/archive",
        *_attack_lines(summary["attacks"]),
        "checks: " + ("all passed" if not problems else f"{len(problems)} problems"),
        *(f"  - {problem}" for problem in problems),
    ]
    return "\n".join(lines)


# --- main ----------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--truth", type=Path, default=KVASIR / "masks", help="folder of ground-truth masks")
    parser.add_argument("--images", type=Path, default=KVASIR / "images", help="folder of the matching images")
    parser.add_argument("--masks", type=int, default=160, help="test images (the first masks that have an image)")
    parser.add_argument("--teams", type=int, default=5)
    parser.add_argument("--archives", type=int, default=40, help="uploads in all, dealt to the teams in turn")
    parser.add_argument("--invalid-every", type=int, default=5, help="every n-th archive breaks a rule (0: none)")
    parser.add_argument("--max-total", type=int, default=6, help="uploads a team may make (the rest get 429)")
    parser.add_argument("--readers", type=int, default=50, help="clients reading the leaderboard")
    parser.add_argument(
        "--pause", type=float, default=1.0, help="mean seconds between a reader's requests (0: back to back)"
    )
    parser.add_argument("--duration", type=float, default=30.0, help="seconds the readers read")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between a team's looks at its uploads")
    parser.add_argument("--score-timeout", type=float, default=900.0, help="seconds to wait for every score")
    parser.add_argument("--bogus", type=int, default=150, help="made-up tokens sent at once each second (0: none)")
    parser.add_argument(
        "--bogus-seconds", type=float, default=5.0, help="seconds a team reads its status alone, then as long attacked"
    )
    parser.add_argument("--dir", type=Path, help="new or empty folder for the challenge (default: a temporary one)")
    parser.add_argument("--url", help="a server the organiser starts on --dir once it is set up (default: start one)")
    parser.add_argument("--out", type=Path, help="write the figures and problems as JSON here")
    args = parser.parse_args(argv)
    if args.url and not args.dir:
        parser.error("--url needs --dir: the folder that server serves")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return load_test(args)
    except MedicoError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def load_test(args: argparse.Namespace) -> int:
    """Set up, load, report, check: 0 when every check passed."""
    with tempfile.TemporaryDirectory(prefix="challenge-load-") as scratch:
        work = Path(scratch)
        data = work / "data" if args.dir is None else Path(f"{args.dir.absolute()}-data")  # outlives a kept --dir
        args.dir = (args.dir or work / "challenge").absolute()
        truth, images = link_test_set(data, args.truth, args.images, args.masks)
        settings = Settings(name="Load test", truth=truth, images=images, seed=0, max_total=args.max_total)
        challenge = init_challenge(args.dir, settings)
        now = datetime.now(timezone.utc)
        tokens = {f"team{i + 1}": add_team(challenge, f"team{i + 1}", now) for i in range(args.teams)}
        latecomer = add_team(challenge, "latecomer", now)  # uploads nothing until it holds one back across the close
        archives = make_archives(truth, list(tokens), args.archives, args.invalid_every)
        print(f"{len(archives)} archives of {args.masks} masks for {args.teams} teams in {args.dir}", flush=True)
        if args.url:
            print(f"waiting for a server on {args.dir} at {args.url}: medico serve {args.dir}", flush=True)
            _wait_until_up(args.url.rstrip("/"), 600)
            server: contextlib.AbstractContextManager[tuple[str, int | None]]
            server = contextlib.nullcontext((args.url.rstrip("/"), None))
        else:
            server = medico_serve(args.dir, work / "server.log")
        attacks = Attacks()
        with server as (url, pid):
            load = asyncio.run(run_load(url, pid, tokens, archives, args))
            if args.bogus:
                asyncio.run(bogus_tokens(url, tokens["team1"], args, attacks))
            asyncio.run(held_back_across_close(url, args.dir, latecomer, archives[0].body, attacks))
        if not args.url and os.environ.get("CHALLENGE_LOAD_LOG"):
            print((work / "server.log").read_text(errors="replace")[-4000:])
        summary = summarise(load, args) | {"attacks": summarise_attacks(attacks, args)}
        problems = check(load, archives, tokens, args) + check_attacks(attacks, args)
    summary["problems"] = problems
    print(table(summary, problems))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
