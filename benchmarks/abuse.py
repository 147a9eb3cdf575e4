"""Abuse beside the load benchmark (`python -m benchmarks.load --abuse`): an enrolment flood and a login flood at the
edge of the rate limits (`backend/ratelimits.py`) while the simulated participants answer.

The service runs behind a pretend reverse proxy: `SIPAT_FORWARDED_ALLOW_IPS=127.0.0.1`, so each client's
`X-Forwarded-For` is the address the limits count (every simulated participant has its own, as strangers
following a study link do). The abusers:

* **enrolment flood**: `clients` addresses, each starting sessions of the benchmark's study at `factor` times
  the per-client limit (`SIPAT_RATE_LIMIT_ENROL_PER_CLIENT`, 60/minute by default): every allowed start
  writes a session with a schedule of trials and is then abandoned; the rest must be 429 with Retry-After;
* **login flood**: `clients` addresses, each posting the dashboard login form at `factor` times the
  per-client limit (30/minute), spraying unknown e-mails (each allowed attempt costs an argon2 hash: the work
  that slowed participants' `next` from 10 ms to 2.4 s before the limits), plus one address attacking the
  real administrator's account at `factor` times the per-account limit (10/minute).

At `factor` 1.5 about two thirds of the flood's requests are allowed (the most work an abuser can make the
service do) and the rest refused; the report gives the counts per status, so "at the edge" is visible.
Every loop is bounded by the participants' run (`stop`) and its own count.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

#: The limits the floods are paced against (the settings' defaults, set explicitly in the service's env).
ENROL_PER_MINUTE = 60
LOGIN_PER_MINUTE = 30
LOGIN_ACCOUNT_PER_MINUTE = 10
ADMIN_EMAIL = "bench-admin@example.org"
_CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
#: Upper bound of requests per abuser, whatever the run's length, and of its requests in flight at once.
MAX_REQUESTS_EACH = 2000
MAX_IN_FLIGHT = 16


def abuse_env(redis_url: str | None) -> dict[str, str]:
    """The service's settings for a run with abuse: limits on at their defaults, the proxy header believed
    from loopback, counts in Redis when given (shared by the uvicorn workers; else each worker counts alone)."""
    env = {
        "SIPAT_FORWARDED_ALLOW_IPS": "127.0.0.1",
        "SIPAT_RATE_LIMIT_ENROL_PER_CLIENT": f"{ENROL_PER_MINUTE}/minute",
        "SIPAT_RATE_LIMIT_ENROL_PER_STUDY": "1200/minute",
        "SIPAT_RATE_LIMIT_LOGIN_PER_CLIENT": f"{LOGIN_PER_MINUTE}/minute",
        "SIPAT_RATE_LIMIT_LOGIN_PER_ACCOUNT": f"{LOGIN_ACCOUNT_PER_MINUTE}/minute",
    }
    if redis_url:
        env["SIPAT_RATE_LIMIT_STORAGE"] = redis_url
    return env


def participant_address(index: int) -> str:
    """The X-Forwarded-For of simulated participant `index` (one address each)."""
    return f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}"


def add_admin(url: str) -> None:
    """The administrator whose account the login flood attacks (its password is never sent)."""
    from backend.auth import create_user
    from backend.db import make_engine, make_session_factory, session_scope

    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            create_user(session, ADMIN_EMAIL, secrets.token_urlsafe(16), is_admin=True)
    finally:
        engine.dispose()


@dataclass
class FloodStats:
    """Per flood: status code -> count, latencies, and whether every 429 carried Retry-After."""

    statuses: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    missing_retry_after: int = 0
    errors: list[str] = field(default_factory=list)


async def _paced(
    stop: asyncio.Event, per_minute: float, factor: float, send: Any, stats: FloodStats, name: str
) -> None:
    """`send()` started at `factor` x `per_minute`, evenly spaced, until `stop` (at most MAX_REQUESTS_EACH).

    Each send runs on its own (up to MAX_IN_FLIGHT at once), as a script's would: a flood that waited for each
    answer would slow itself down with the service and never reach the limit (a first version did: every
    request passed). A request that fails (a timeout: the service is saturated) counts as status 0."""
    interval = 60.0 / (per_minute * factor)
    next_at = time.monotonic()
    slots = asyncio.Semaphore(MAX_IN_FLIGHT)
    running: set[asyncio.Task[None]] = set()

    async def one() -> None:
        t0 = time.perf_counter()
        try:
            await send()
        except Exception as exc:
            stats.latencies[name].append(time.perf_counter() - t0)
            stats.statuses[name][0] += 1
            if len(stats.errors) < 20:
                stats.errors.append(f"{name}: {type(exc).__name__}: {exc}")
        finally:
            slots.release()

    for _ in range(MAX_REQUESTS_EACH):
        if stop.is_set():
            break
        await slots.acquire()
        task = asyncio.create_task(one())
        running.add(task)
        task.add_done_callback(running.discard)
        next_at += interval
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.monotonic()))
    await asyncio.gather(*running)


def _record(stats: FloodStats, name: str, reply: Any, t0: float) -> None:
    stats.latencies[name].append(time.perf_counter() - t0)
    stats.statuses[name][reply.status_code] += 1
    if reply.status_code == 429 and not reply.headers.get("retry-after"):
        stats.missing_retry_after += 1


async def enrol_flood(connection: Any, port: int, slug: str, address: str, factor: float, stats: FloodStats,
                      stop: asyncio.Event) -> None:  # fmt: skip
    """Session starts of `slug` from `address`, paced at `factor` x the per-client limit (a connection each)."""
    name = "flood: POST sessions"

    async def send() -> None:
        conn = connection(port, headers={"X-Forwarded-For": address})
        t0 = time.perf_counter()
        body = {"consent": True, "external_id": f"flood-{secrets.token_hex(6)}"}
        try:
            _record(stats, name, await conn.request("POST", f"/api/v1/studies/{slug}/sessions", body), t0)
        finally:
            await conn.close()

    try:
        await _paced(stop, ENROL_PER_MINUTE, factor, send, stats, name)
    except Exception as exc:  # a flood's failure is reported, never the participants' run
        stats.errors.append(f"{name}: {type(exc).__name__}: {exc}")


async def login_flood(connection: Any, port: int, address: str, factor: float, stats: FloodStats,
                      stop: asyncio.Event, *, account: str | None = None) -> None:  # fmt: skip
    """Dashboard logins from `address` with a valid form token (the form is fetched as a browser would), paced
    at `factor` x the per-client limit spraying unknown e-mails, or x the per-account limit at `account`."""
    headers = {"X-Forwarded-For": address}
    name = "flood: POST login (one account)" if account else "flood: POST login (sprayed)"

    async def fetch_form() -> str:
        conn = connection(port, headers=headers)
        try:
            page = await conn.request("GET", "/admin/login")
        finally:
            await conn.close()
        headers["Cookie"] = page.headers.get("set-cookie", "").split(";")[0]
        match = _CSRF_RE.search(page.text)
        if match is None:
            raise RuntimeError(f"no login form (status {page.status_code})")
        return match[1]

    async def send() -> None:
        nonlocal csrf
        email = account or f"nobody-{secrets.token_hex(4)}@example.org"
        form = urlencode({"csrf_token": csrf, "email": email, "password": secrets.token_hex(8), "next": "/admin"})
        conn = connection(port, headers=dict(headers))
        t0 = time.perf_counter()
        try:
            reply = await conn.request("POST", "/admin/login", form.encode())
        finally:
            await conn.close()
        _record(stats, name, reply, t0)
        if reply.status_code == 403:  # the form's token went stale: fetch it again, as a browser reloads
            csrf = await fetch_form()

    per_minute = LOGIN_ACCOUNT_PER_MINUTE if account else LOGIN_PER_MINUTE
    try:
        csrf = await fetch_form()
        await _paced(stop, per_minute, factor, send, stats, name)
    except Exception as exc:
        stats.errors.append(f"{name}: {type(exc).__name__}: {exc}")


def start_floods(connection: Any, port: int, slug: str, *, clients: int, factor: float, stats: FloodStats,
                 stop: asyncio.Event) -> list[asyncio.Task[None]]:  # fmt: skip
    """The abusers as tasks: `clients` enrolment flooders, `clients` login sprayers, one account attacker."""
    tasks = [
        asyncio.create_task(enrol_flood(connection, port, slug, f"198.51.100.{k + 1}", factor, stats, stop))
        for k in range(clients)
    ]
    tasks += [
        asyncio.create_task(login_flood(connection, port, f"203.0.113.{k + 1}", factor, stats, stop))
        for k in range(clients)
    ]
    tasks.append(
        asyncio.create_task(login_flood(connection, port, "192.0.2.77", factor, stats, stop, account=ADMIN_EMAIL))
    )
    return tasks


def report_floods(stats: FloodStats, wall: float, pct: Any) -> None:
    print(f"\n{'abuse':<34} {'requests':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}  statuses")
    for name, lat in stats.latencies.items():
        statuses = ",".join(f"{k}:{v}" for k, v in sorted(stats.statuses[name].items()))
        print(f"{name:<34} {len(lat):>8} {len(lat) / wall:>8.1f} {pct(lat, 0.5) * 1e3:>8.1f} "
              f"{pct(lat, 0.99) * 1e3:>8.1f}  {statuses}")  # fmt: skip
    print(f"429 answers without Retry-After: {stats.missing_retry_after}; status 0 above: the request failed "
          "(e.g. no answer within 60 s: the service was saturated)")  # fmt: skip
    for error in stats.errors[:5]:
        print("  ", error)
