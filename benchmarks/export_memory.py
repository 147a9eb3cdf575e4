"""Streamed export in constant memory: the server's RSS while it streams 10,000 vs 1,000,000 responses.

    .venv/bin/python -m benchmarks.export_memory [--rows 1000000] [--small 10000] [--postgres-url URL]

A schema `bench_<random>` of the PostgreSQL of `--postgres-url` (default `$SIPAT_BENCH_POSTGRES_URL`, else
`$SIPAT_TEST_POSTGRES_URL`) gets two studies on one stimulus set: one with `--small` responses, one with
`--rows`, written with PostgreSQL COPY (participants of 100 trials each, every trial answered). The service
runs under uvicorn (one process, 127.0.0.1, a free port); each study's `responses.csv` is downloaded through
the research API while the server's resident memory is sampled every 20 ms (psutil). Printed: the server's
RSS before and its peak during each export, the growth, and the export's throughput. The schema is dropped
at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.load.service import bench_schema, postgres_url_from, seed_study, service_env
from tests.netkit import free_port, serving, uvicorn_cmd

TRIALS_PER_PARTICIPANT = 100


def bulk_answers(url: str, study_id: int, n_rows: int, *, first_index: int = 0) -> None:
    """`n_rows` answered trials of study `study_id` with COPY (participants of TRIALS_PER_PARTICIPANT trials)."""
    import psycopg
    from sqlalchemy import text

    from backend.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            stimuli = conn.execute(text("SELECT id FROM stimuli WHERE role = 'trial' ORDER BY id")).scalars().all()
            pid0 = conn.execute(text("SELECT coalesce(max(id), 0) FROM participants")).scalar_one() + 1
            tid0 = conn.execute(text("SELECT coalesce(max(id), 0) FROM trials")).scalar_one() + 1
    finally:
        engine.dispose()
    n_participants = -(-n_rows // TRIALS_PER_PARTICIPANT)
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as pg, pg.cursor() as cur:
        with cur.copy(
            "COPY participants (id, study_id, token, index, consent, client_info, started_at, flagged) FROM STDIN"
        ) as copy:
            for k in range(n_participants):
                pid = pid0 + k
                copy.write_row((pid, study_id, f"bench-{study_id}-{pid}", first_index + k, True, "{}", "now", False))
        trial_rows = response_rows = 0
        with cur.copy("COPY trials (id, participant_id, position, phase, stimulus_id, media_key) FROM STDIN") as copy:
            for k in range(n_rows):
                pid, position = pid0 + k // TRIALS_PER_PARTICIPANT, k % TRIALS_PER_PARTICIPANT
                copy.write_row((tid0 + k, pid, position, "main", stimuli[k % len(stimuli)], f"m{study_id}x{tid0 + k}"))
                trial_rows += 1
        with cur.copy(
            "COPY responses (trial_id, judgment, confidence, rt_ms, client_timestamps, created_at) FROM STDIN"
        ) as copy:
            for k in range(n_rows):
                judgment = "perturbed" if k % 3 else "clean"
                copy.write_row((tid0 + k, judgment, 1 + k % 4, 300.0 + k % 1700, '{"onset": 1.5}', "now"))
                response_rows += 1
        cur.execute("SELECT setval(pg_get_serial_sequence('participants', 'id'), (SELECT max(id) FROM participants))")
        cur.execute("SELECT setval(pg_get_serial_sequence('trials', 'id'), (SELECT max(id) FROM trials))")
        cur.execute("ANALYZE")
        pg.commit()
    assert trial_rows == response_rows == n_rows


def new_study(url: str, data_dir: Path, slug: str) -> int:
    """Another study on the benchmark's stimulus set (the first call seeds the set)."""
    from sqlalchemy import text

    from backend.db import make_engine

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            sset = conn.execute(text("SELECT id FROM stimulus_sets LIMIT 1")).scalar()
            if sset is None:
                engine.dispose()
                return seed_study(url, data_dir, slug=slug)
            return conn.execute(
                text(
                    "INSERT INTO studies (slug, title, status, config, created_at) VALUES (:slug, :slug, 'open', "
                    "CAST(:config AS JSON), now()) RETURNING id"
                ),
                {"slug": slug, "config": f'{{"stimulus_set_id": {sset}, "n_main": 14}}'},
            ).scalar_one()
    finally:
        engine.dispose()


def api_token(url: str) -> str:
    from backend.auth import create_token, create_user
    from backend.db import make_engine, make_session_factory, session_scope

    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            # an administrator: the seeded studies have no owner, and only administrators reach those
            admin = create_user(session, "bench@example.org", "bench-password", is_admin=True)
            return create_token(session, admin)
    finally:
        engine.dispose()


class RssSampler:
    """Samples the resident memory of a process (and its children) every `interval_s` in a thread."""

    def __init__(self, pid: int, interval_s: float = 0.02) -> None:
        import psutil

        self.proc = psutil.Process(pid)
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def rss(self) -> int:
        procs = [self.proc, *self.proc.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RssSampler:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def download(port: int, path: str, token: str) -> tuple[int, int, float]:
    """(bytes, lines, seconds) of a streamed GET, read chunk by chunk and thrown away."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n".encode()
    )
    await writer.drain()
    t0 = time.perf_counter()
    head = await reader.readuntil(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n")[0]:
        raise RuntimeError(f"export failed: {head[:200]!r} {(await reader.read(500))!r}")
    size = lines = 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        n = int(size_line.split(b";")[0], 16)
        if n == 0:
            break
        chunk = await reader.readexactly(n + 2)
        size += n
        lines += chunk[:-2].count(b"\n")
    writer.close()
    return size, lines, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--postgres-url", default=None)
    args = parser.parse_args(argv)
    base_url = postgres_url_from(args.postgres_url)
    with tempfile.TemporaryDirectory(prefix="sipat-export-") as tmp, bench_schema(base_url) as url:
        data_dir = Path(tmp) / "data"
        t0 = time.perf_counter()
        small_id = new_study(url, data_dir, "small")
        big_id = new_study(url, data_dir, "big")
        bulk_answers(url, small_id, args.small)
        bulk_answers(url, big_id, args.rows)
        print(f"inserted {args.small + args.rows:,} answered trials with COPY in {time.perf_counter() - t0:.1f} s")
        token = api_token(url)
        port = free_port()
        log = Path(tmp) / "server.log"
        cmd = uvicorn_cmd("backend.main:create_app", port)
        ready = f"http://127.0.0.1:{port}/api/v1/health"
        with serving(cmd, env=service_env(url, data_dir), log=log, ready_url=ready) as proc:
            results = []
            for label, study_id, rows in (("small", small_id, args.small), ("large", big_id, args.rows)):
                path = f"/api/v1/studies/{study_id}/export/responses.csv"
                with RssSampler(proc.pid) as sampler:
                    before = sampler.peak
                    size, lines, seconds = asyncio.run(download(port, path, token))
                if lines != rows + 1:
                    print(f"!! {label}: {lines} lines, expected {rows + 1}")
                    return 1
                results.append((label, rows, before, sampler.peak, size, seconds))
        mib = 1024 * 1024
        print(f"\n{'export':<8} {'rows':>10} {'RSS before':>11} {'RSS peak':>10} {'growth':>9} {'MB':>8} "
              f"{'seconds':>8} {'rows/s':>10} {'MB/s':>7}")  # fmt: skip
        for label, rows, before, peak, size, seconds in results:
            print(
                f"{label:<8} {rows:>10,} {before / mib:>9.1f}Mi {peak / mib:>8.1f}Mi {(peak - before) / mib:>7.1f}Mi "
                f"{size / 1e6:>8.1f} {seconds:>8.2f} {rows / seconds:>10,.0f} {size / 1e6 / seconds:>7.1f}"
            )
        (_, small_rows, _, small_peak, _, _), (_, big_rows, _, big_peak, _, _) = results
        print(
            f"peak RSS at {big_rows:,} rows / at {small_rows:,} rows: {big_peak / small_peak:.2f} "
            f"({big_rows // small_rows}x the rows); uvicorn, one process, server-side cursor batches of 500"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
