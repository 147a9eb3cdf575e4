"""`python -m benchmarks.load`: the flags and one run (see the package's docstring)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

from benchmarks import abuse
from benchmarks import load as package
from benchmarks.load.client import Stats
from benchmarks.load.crowd import run_bare, run_participants
from benchmarks.load.report import check_answers, cpu_seconds, pct, profiled, report, report_phases
from benchmarks.load.service import STUDY_CONFIG, bench_schema, postgres_url_from, seed_study, service_env
from tests.netkit import free_port, serving, uvicorn_cmd  # one server launcher for tests and benchmarks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.load", description=(package.__doc__ or "").split("\n\n")[0]
    )
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
        bare_cmd = uvicorn_cmd("benchmarks.load.bare:bare_app", bare_port, workers=args.workers, extra=fast)
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
