"""Load: simulated participants doing whole sessions against uvicorn + PostgreSQL, all on loopback.

    .venv/bin/python benchmarks/load.py --participants 200 [--postgres-url URL] [--workers 2] [--think-ms 3000]

What it does, in one run:

1. creates a schema `bench_<random>` in the PostgreSQL of `--postgres-url` (default: `$SIPAT_BENCH_POSTGRES_URL`,
   else `$SIPAT_TEST_POSTGRES_URL`), migrates it, seeds a dataset, a stimulus set and an open study; the
   schema is dropped at the end (also after a failure or Ctrl-C);
2. starts the service with uvicorn in a subprocess on 127.0.0.1 and a free port (`--workers` processes), and
   a bare FastAPI app (one trivial sync endpoint, the same uvicorn settings) on another port;
3. runs `--participants` simulated participants at once (asyncio, one keep-alive connection each): each creates a
   session, then loops `next` -> image -> `response` (or `annotation` with a small PNG mask) until done,
   waiting a human-like think time between trials (`--think-ms`, uniform 0.5x..1.5x; 0 = as fast as possible).
   503s (Retry-After) and connection errors are retried with a bounded backoff, as the study page does;
4. meanwhile a fixed-rate probe sends `GET /ping` to the bare app, so its latency is measured under the same
   machine load; then the bare app alone at the same concurrency;
5. prints throughput and p50/p99 per endpoint and their ratio to the bare endpoint, then checks in the
   database that every acknowledged answer (2xx) is stored exactly once with the values sent, and prints
   lost / duplicated / altered counts. Exit status 1 if any answer is lost, duplicated or altered.

Everything stays on 127.0.0.1; every loop is bounded in count and time (`--max-seconds`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import abuse  # noqa: E402  (the floods of --abuse)

from tests.answers import discrepancies  # noqa: E402
from tests.netkit import free_port, serving, uvicorn_cmd  # noqa: E402  (one server launcher for tests and benchmarks)
from tests.seeding import Pictures, seed_ready_study  # noqa: E402  (one seed for tests and benchmarks)
from tests.simulated_participant import take_part  # noqa: E402  (one participant for the fault tests too)

SECRET = "bench-secret-" + "z" * 40
IMAGE_SIZE = (64, 64)
EPS_LEVELS = [2 / 255, 4 / 255, 8 / 255]
#: 2 practice + 14 main + 2 catch + 2 annotation = 20 trials per session.
STUDY_CONFIG = {"n_practice": 2, "n_main": 14, "n_catch": 2, "n_annotate": 2, "stimulus_duration_ms": 500}
N_IMAGES = 16


# --- the database -------------------------------------------------------------------------------------------


def postgres_url_from(arg: str | None) -> str:
    url = arg or os.environ.get("SIPAT_BENCH_POSTGRES_URL") or os.environ.get("SIPAT_TEST_POSTGRES_URL")
    if not url:
        sys.exit(
            "no PostgreSQL: pass --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test or set "
            "SIPAT_BENCH_POSTGRES_URL / SIPAT_TEST_POSTGRES_URL"
        )
    return url


def schema_url(base_url: str, schema: str) -> str:
    sep = "&" if "?" in base_url else "?"
    return f"{base_url}{sep}options=-csearch_path%3D{schema}"


@contextmanager
def bench_schema(base_url: str, *, migrate: bool = True) -> Iterator[str]:
    """URL of a new schema `bench_<random>` (migrated to head), dropped when the block ends."""
    from sqlalchemy import text

    from backend.db import make_engine
    from backend.migrate import upgrade

    schema = f"bench_{secrets.token_hex(5)}"
    admin = make_engine(base_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = schema_url(base_url, schema)
    try:
        if migrate:
            upgrade(url)
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


def _png(seed: int, noise: float, size: tuple[int, int] = IMAGE_SIZE, mode: str = "RGB") -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=3)
    pixels = np.clip(base + rng.uniform(-noise, noise, size=(size[1], size[0], 3)) * 255, 0, 255).astype("uint8")
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").convert(mode).save(out, format="PNG")
    return out.getvalue()


#: The benchmark's pictures: 64 px noise around a colour per image, stimuli with noise of amplitude eps.
NOISE = Pictures(
    IMAGE_SIZE[0],
    IMAGE_SIZE[1],
    label=lambda k: f"class{k % 4}",
    image=lambda k: _png(k, 0),
    stimulus=_png,
    filename=lambda k: f"class{k % 4}/{k}.png",
)


def seed_study(url: str, data_dir: Path, *, slug: str = "bench") -> int:
    """A dataset of N_IMAGES images, a ready stimulus set (every eps + a catch stimulus), an open study
    (`tests.seeding.seed_ready_study`, as the tests seed theirs)."""
    from backend.db import make_engine, make_session_factory, session_scope
    from backend.storage import LocalBlobStore

    storage = LocalBlobStore(data_dir / "blobs", durable=False)
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            study = seed_ready_study(
                session,
                storage,
                NOISE,
                slug=slug,
                n_images=N_IMAGES,
                eps_levels=EPS_LEVELS,
                title="Load test",
                dataset_name="bench",
                set_name="bench",
                steps=4,
                **STUDY_CONFIG,
            )
            return study.id
    finally:
        engine.dispose()


# --- servers ------------------------------------------------------------------------------------------------


def bare_app() -> Any:
    """The baseline: a FastAPI app with one trivial sync endpoint (the participant routes are sync too)."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, bool]:
        return {"ok": True}

    return app


def service_env(url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "SIPAT_DATABASE_URL": url,
        "SIPAT_DATA_DIR": str(data_dir),
        "SIPAT_SECRET_KEY": SECRET,
        "SIPAT_ENV": "development",
        # every simulated participant enrols from 127.0.0.1, all within the first second: no per-client /
        # per-study enrolment limit here (not even with --abuse: the per-second one would refuse the crowd)
        "SIPAT_RATE_LIMIT_ENROL_PER_CLIENT": "",
        "SIPAT_RATE_LIMIT_ENROL_PER_STUDY": "",
        "SIPAT_RATE_LIMIT_ENROL_BURST_PER_STUDY": "",
        "PYTHONPATH": str(REPO),
        **extra,
    }


# --- participants -------------------------------------------------------------------------------------------


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    #: perf_counter() at the start of each request, parallel to `latencies` (for the per-phase percentiles)
    started: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    #: (token, trial_id) -> what was acknowledged: ("response", judgment, confidence, rt) | ("annotation", ...)
    acknowledged: dict[tuple[str, int], tuple[Any, ...]] = field(default_factory=dict)
    completed: int = 0


@dataclass
class Reply:
    status_code: int
    headers: dict[str, str]
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")


class Connection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:`port`, as a browser tab holds one.

    A minimal client on asyncio streams (Content-Length and chunked bodies): httpx.AsyncClient costs ~2 ms of
    client CPU per request, so on this 2-core machine it saturated at ~360 req/s against the bare endpoint and
    the benchmark measured the client, not the service. This one costs a few tens of microseconds.
    """

    def __init__(self, port: int, timeout_s: float = 60.0, headers: dict[str, str] | None = None) -> None:
        self.port = port
        self.timeout_s = timeout_s
        #: sent with every request (the abuse clients' X-Forwarded-For and login cookie: `benchmarks/abuse.py`)
        self.headers = dict(headers or {})
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None

    async def request(self, method: str, path: str, body: Any = None) -> Reply:
        try:
            return await asyncio.wait_for(self._request(method, path, body), self.timeout_s)
        except BaseException:
            await self.close()  # a half-read answer must not be read as the next one
            raise

    async def _request(self, method: str, path: str, body: Any) -> Reply:
        if self._streams is None:
            self._streams = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self._streams
        form = isinstance(body, bytes)  # an url-encoded form (the login flood); anything else is sent as JSON
        payload = b"" if body is None else body if form else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUser-Agent: sipat-load\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in self.headers.items())
        if body is not None:
            kind = "application/x-www-form-urlencoded" if form else "application/json"
            head += f"Content-Type: {kind}\r\nContent-Length: {len(payload)}\r\n"
        writer.write(head.encode() + b"\r\n" + payload)
        await writer.drain()
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if "content-length" in headers:
            content = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                parts.append(await reader.readexactly(size + 2))
            await reader.readuntil(b"\r\n")
            content = b"".join(p[:-2] for p in parts)
        else:
            content = b""
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Reply(status, headers, content)


MAX_ATTEMPTS = 8
_CONNECTION_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError)


async def call(conn: Connection, stats: Stats, name: str, method: str, path: str, body: Any = None) -> Reply:
    """One request with the study page's retry policy: 503 (honouring Retry-After, capped at 2 s) and
    connection errors are retried up to MAX_ATTEMPTS times; each attempt's latency is recorded under `name`."""
    for attempt in range(MAX_ATTEMPTS):
        t0 = time.perf_counter()
        try:
            r = await conn.request(method, path, body)
        except _CONNECTION_ERRORS as exc:
            stats.started[name].append(t0)
            stats.latencies[name].append(time.perf_counter() - t0)
            stats.statuses[name][0] += 1
            stats.retries += 1
            if attempt == MAX_ATTEMPTS - 1:
                raise RuntimeError(f"{name}: {type(exc).__name__} after {MAX_ATTEMPTS} attempts") from exc
            await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
            continue
        stats.started[name].append(t0)
        stats.latencies[name].append(time.perf_counter() - t0)
        stats.statuses[name][r.status_code] += 1
        if r.status_code == 503 and attempt < MAX_ATTEMPTS - 1:
            stats.retries += 1
            await asyncio.sleep(min(2.0, float(r.headers.get("retry-after", "1") or 1)))
            continue
        return r
    return r


def _mask(width: int, height: int, seed: int) -> str:
    from PIL import Image

    img = Image.new("L", (width, height), 0)
    rng = random.Random(seed)
    x, y = rng.randrange(width // 2), rng.randrange(height // 2)
    img.paste(255, (x, y, x + width // 2, y + height // 2))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


class LoadAnswers:
    """Participant `index`'s answers, drawn from its own RNG (also its think times): a random judgment,
    confidence and reaction time, or a random rectangle painted with 20 stroke points."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.rng = random.Random(index)

    def annotation(self, trial: dict[str, Any]) -> dict[str, Any]:
        rng = self.rng
        return {
            "mask_png": _mask(trial["mask_width"], trial["mask_height"], self.index * 1000 + trial["position"]),
            "strokes": [[[rng.randrange(64), rng.randrange(64)] for _ in range(20)]],
            "duration_ms": round(rng.uniform(2000, 9000), 1),
        }

    def response(self, trial: dict[str, Any]) -> dict[str, Any]:
        rng = self.rng
        return {
            "judgment": rng.choice(["clean", "perturbed"]),
            "confidence": rng.randint(1, 4),
            "rt_ms": round(rng.uniform(200, 2500), 3),
            "client_timestamps": {"onset": 1.0, "answer": 2.0},
        }


async def participant(
    port: int, stats: Stats, index: int, *, slug: str, think_s: float, deadline: float, forwarded: bool = False
) -> None:
    """One session of the shared simulated participant (`tests.simulated_participant`) over its own
    keep-alive connection, with the study page's retry policy (`call`); `forwarded`: from its own address
    behind the pretend proxy (`--abuse`)."""
    conn = Connection(port, headers={"X-Forwarded-For": abuse.participant_address(index)} if forwarded else None)
    answers = LoadAnswers(index)

    async def request(name: str, method: str, path: str, body: dict[str, Any] | None) -> Reply:
        return await call(conn, stats, name, method, path, body)

    try:
        await take_part(
            request,
            stats,
            answers,
            slug=slug,
            think_s=lambda: think_s * answers.rng.uniform(0.5, 1.5) if think_s else 0.0,
            deadline=deadline,
        )
    finally:
        await conn.close()


async def run_participants(
    port: int,
    n: int,
    *,
    slug: str,
    think_s: float,
    max_seconds: float,
    probe_port: int | None,
    stats: Stats,
    floods: tuple[int, float, abuse.FloodStats] | None = None,
) -> tuple[float, Stats | None]:
    """All participants at once (each starts within the first think time); returns (wall seconds, probe stats).
    `floods`: (clients, factor, stats) of the abusers (`benchmarks/abuse.py`), run until the participants end."""
    deadline = time.monotonic() + max_seconds
    probe_stats = Stats() if probe_port else None
    stop = asyncio.Event()

    async def probe() -> None:  # the bare endpoint, 20 times a second, while the participants run
        assert probe_stats is not None and probe_port is not None
        conn = Connection(probe_port)
        while not stop.is_set():
            await call(conn, probe_stats, "GET /ping (bare, under load)", "GET", "/ping")
            await asyncio.sleep(0.05)
        await conn.close()

    async def staggered(i: int) -> None:
        await asyncio.sleep(random.Random(-i).uniform(0, think_s or 0))
        await participant(port, stats, i, slug=slug, think_s=think_s, deadline=deadline, forwarded=bool(floods))

    probe_task = asyncio.create_task(probe()) if probe_port else None
    flooding = []
    if floods:
        clients, factor, flood_stats = floods
        flooding = abuse.start_floods(Connection, port, slug, clients=clients, factor=factor, stats=flood_stats,
                                      stop=stop)  # fmt: skip
    t0 = time.perf_counter()
    results = await asyncio.gather(*(staggered(i) for i in range(n)), return_exceptions=True)
    wall = time.perf_counter() - t0
    stop.set()
    if probe_task:
        await probe_task
    await asyncio.gather(*flooding)
    stats.errors += [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    return wall, probe_stats


async def run_bare(port: int, n: int, requests_each: int, think_s: float) -> tuple[float, Stats]:
    """The bare endpoint alone: `n` clients at once, each `requests_each` GETs with the same pacing as a
    participant (three requests per think time)."""
    stats = Stats()

    async def one(i: int) -> None:
        rng = random.Random(i)
        conn = Connection(port)
        await asyncio.sleep(rng.uniform(0, think_s or 0))
        for _ in range(requests_each):
            await call(conn, stats, "GET /ping (bare)", "GET", "/ping")
            if think_s:
                await asyncio.sleep(think_s / 3 * rng.uniform(0.5, 1.5))
        await conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - t0, stats


# --- report and check ---------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(stats: Stats, wall: float, bare: Stats, bare_wall: float, probe: Stats | None) -> None:
    bare_lat = next(iter(bare.latencies.values()))
    b50, b99 = pct(bare_lat, 0.5), pct(bare_lat, 0.99)
    print(f"\n{'endpoint':<34} {'requests':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'p50/bare':>9} {'p99/bare':>9}  statuses")  # fmt: skip
    rows = [(name, lat, wall, stats) for name, lat in stats.latencies.items()]
    if probe:
        rows += [(name, lat, wall, probe) for name, lat in probe.latencies.items()]
    rows += [(name, lat, bare_wall, bare) for name, lat in bare.latencies.items()]
    for name, lat, seconds, source in rows:
        p50, p99 = pct(lat, 0.5), pct(lat, 0.99)
        statuses = ",".join(f"{k}:{v}" for k, v in sorted(source.statuses[name].items()))
        print(
            f"{name:<34} {len(lat):>8} {len(lat) / seconds:>8.1f} {p50 * 1e3:>8.1f} {p99 * 1e3:>8.1f} "
            f"{max(lat) * 1e3:>8.1f} {p50 / b50:>9.1f} {p99 / b99:>9.1f}  {statuses}"
        )
    total = sum(len(v) for v in stats.latencies.values())
    print(f"all participant requests: {total} in {wall:.1f} s = {total / wall:.1f} req/s; retries {stats.retries}")
    print(f"(ratios: latency / latency of the bare endpoint measured alone in this run, p50 {b50 * 1e3:.2f} ms, "
          f"p99 {b99 * 1e3:.2f} ms)")  # fmt: skip


def report_phases(stats: Stats, names: tuple[str, ...] = ("GET next", "POST response")) -> None:
    """p99 of `names` while participants are still arriving (until the last session start returned) and after:
    the arrivals are the expensive part (a session start writes a schedule of trials)."""
    starts = stats.started.get("POST sessions", [])
    if not starts:
        return
    arrived = max(t + lat for t, lat in zip(starts, stats.latencies["POST sessions"], strict=True))
    print(f"arrivals end {arrived - min(starts):.1f} s after the first; p99 during arrivals / after:")
    for name in names:
        pairs = list(zip(stats.started.get(name, []), stats.latencies.get(name, []), strict=True))
        during = [lat for t, lat in pairs if t < arrived]
        after = [lat for t, lat in pairs if t >= arrived]
        print(f"  {name:<14} {pct(during, 0.99) * 1e3:7.1f} ms ({len(during)} requests) / "
              f"{pct(after, 0.99) * 1e3:7.1f} ms ({len(after)})")  # fmt: skip


def check_answers(url: str, stats: Stats) -> tuple[int, int, int, int]:
    """(acknowledged, lost, duplicated, altered): every acknowledged answer must be stored exactly once with
    the values that were sent (`tests.answers`)."""
    from backend.db import make_engine

    engine = make_engine(url)
    try:
        found = discrepancies(engine, stats.acknowledged)
    finally:
        engine.dispose()
    return len(stats.acknowledged), len(found.lost), len(found.duplicated), len(found.altered)


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(CPU seconds of the process `pid` and its children, CPU seconds of all PostgreSQL processes) so far;
    (nan, nan) without psutil. Robust to other load on the machine, unlike latencies."""
    try:
        import psutil
    except ImportError:
        return float("nan"), float("nan")

    def used(proc: Any) -> float:
        try:
            t = proc.cpu_times()
            return t.user + t.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return 0.0

    root = psutil.Process(pid)
    service = used(root) + sum(used(child) for child in root.children(recursive=True))
    postgres = sum(used(p) for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("postgres"))
    return service, postgres


@contextmanager
def profiled(pid: int, out: Path | None) -> Iterator[None]:
    """py-spy (pip install py-spy) sampling the service and its workers while the block runs."""
    if out is None:
        yield
        return
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    cmd = [exe, "record", "--pid", str(pid), "--subprocesses", "--format", "raw", "--rate", "200", "--gil",
           "--output", str(out), "--nonblocking"]  # fmt: skip
    spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
        print(f"py-spy profile (collapsed stacks): {out}")


# --- main ---------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=200)
    parser.add_argument("--postgres-url", default=None)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (both servers)")
    parser.add_argument(
        "--think-ms",
        type=float,
        default=3000.0,
        help="mean pause per trial (default: a brisk participant: fixation, stimulus, judgment, confidence); 0 = none",
    )
    parser.add_argument("--max-seconds", type=float, default=240.0, help="stop the participants after this")
    parser.add_argument("--keep-logs", action="store_true", help="print the server log at the end")
    parser.add_argument(
        "--profile", type=Path, default=None, help="record the service with py-spy (collapsed stacks) to this file"
    )
    parser.add_argument("--abuse", action="store_true", help="run the floods of benchmarks/abuse.py beside")
    parser.add_argument("--abuse-clients", type=int, default=4, help="addresses per flood")
    parser.add_argument("--abuse-factor", type=float, default=1.5, help="flood rate / the limit it is paced at")
    parser.add_argument("--redis-url", default=os.environ.get("SIPAT_TEST_REDIS_URL"), help="rate-limit counts")
    args = parser.parse_args(argv)
    base_url = postgres_url_from(args.postgres_url)
    think_s = args.think_ms / 1000
    print(f"{args.participants} participants, {sum(STUDY_CONFIG[k] for k in STUDY_CONFIG if k.startswith('n_'))} "
          f"trials each, think time {args.think_ms:g} ms (x0.5..1.5), uvicorn --workers {args.workers}, "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="sipat-load-") as tmp, bench_schema(base_url) as url:
        data_dir = Path(tmp) / "data"
        seed_study(url, data_dir)
        port, bare_port = free_port(), free_port()
        env = service_env(url, data_dir, **(abuse.abuse_env(args.redis_url) if args.abuse else {}))
        flood_stats = abuse.FloodStats() if args.abuse else None
        if args.abuse:
            abuse.add_admin(url)
            print(f"abuse: {args.abuse_clients} addresses per flood at {args.abuse_factor:g}x the limits; counts "
                  f"in {args.redis_url or 'memory (per worker)'}")  # fmt: skip
        fast = ("--no-access-log", "--backlog", "4096")
        app_cmd = uvicorn_cmd("backend.main:create_app", port, workers=args.workers, extra=fast)
        bare_cmd = uvicorn_cmd(
            "load:bare_app", bare_port, workers=args.workers, extra=(*fast, "--app-dir", str(REPO / "benchmarks"))
        )
        log, bare_log = Path(tmp) / "server.log", Path(tmp) / "bare.log"
        with (
            serving(app_cmd, env=env, log=log, ready_url=f"http://127.0.0.1:{port}/api/v1/health") as service,
            serving(bare_cmd, env=env, log=bare_log, ready_url=f"http://127.0.0.1:{bare_port}/ping"),
            profiled(service.pid, args.profile),
        ):
            stats = Stats()
            cpu0 = cpu_seconds(service.pid)
            wall, probe = asyncio.run(
                run_participants(
                    port,
                    args.participants,
                    slug="bench",
                    think_s=think_s,
                    max_seconds=args.max_seconds,
                    probe_port=bare_port,
                    stats=stats,
                    floods=(args.abuse_clients, args.abuse_factor, flood_stats) if flood_stats else None,
                )
            )
            cpu1 = cpu_seconds(service.pid)
            per_session = max(1, round(sum(len(v) for v in stats.latencies.values()) / max(1, args.participants)))
            bare_wall, bare = asyncio.run(run_bare(bare_port, args.participants, per_session, think_s))
        report(stats, wall, bare, bare_wall, probe)
        report_phases(stats)
        if flood_stats is not None:
            abuse.report_floods(flood_stats, wall, pct)
        n_requests = sum(len(v) for v in stats.latencies.values())
        print(
            f"CPU per participant request: service {(cpu1[0] - cpu0[0]) / n_requests * 1e3:.2f} ms, PostgreSQL "
            f"{(cpu1[1] - cpu0[1]) / n_requests * 1e3:.2f} ms (machine load average now {os.getloadavg()[0]:.1f})"
        )
        acknowledged, lost, duplicated, altered = check_answers(url, stats)
        print(f"\nsessions completed: {stats.completed} of {args.participants}; errors: {len(stats.errors)}")
        for error in stats.errors[:10]:
            print("  ", error)
        print(f"answers acknowledged: {acknowledged}; lost: {lost}; duplicated: {duplicated}; altered: {altered}")
        if args.keep_logs or stats.errors:
            print("\n--- server log (tail)\n" + log.read_text(errors="replace")[-3000:])
        for name in ("GET next", "POST response"):
            p99 = pct(stats.latencies.get(name, []), 0.99) * 1e3
            print(f"goal p99 {name} < 100 ms: {'met' if p99 < 100 else 'MISSED'} ({p99:.1f} ms)")
    print(json.dumps({"lost": lost, "duplicated": duplicated, "altered": altered}))
    return 1 if lost or duplicated or altered or stats.errors else 0


if __name__ == "__main__":
    sys.exit(main())
