"""The load benchmark's report: percentiles per endpoint against the bare one, p99 during and after the arrivals,
the exactly-once check of every acknowledged answer, CPU seconds, and an optional py-spy profile."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.load.client import Stats
from tests.answers import discrepancies


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
