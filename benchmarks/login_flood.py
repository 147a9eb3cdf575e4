"""A login flood from many addresses beside one participant's `next`, with and without the argon2 budget.

    .venv/bin/python -m benchmarks.login_flood [--clients 40] [--logins-each 3]

One uvicorn process (SQLite, loopback only) per mode: `off` (no budget: as many hashes at once as requests) and
`on` (the settings' defaults of `backend.hashbudget`). The per-address and per-account login limits are off and
X-Forwarded-For is believed from loopback, so each of `--clients` threads is an address of its own (the attack
those limits do not bound). While the flood runs, the participant asks for `next` every 50 ms. Printed per mode:
`next` before and during the flood, the flood's answers (401 = hashed, 429 = refused), its duration. Bounded:
clients x logins-each requests per mode, each with a 60 s timeout.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.netkit import free_port, serving, uvicorn_cmd

REPO = Path(__file__).resolve().parents[1]

SECRET = "bench-secret-" + "z" * 40
ADMIN, PASSWORD = "admin@example.org", "correct horse battery"
MODES = {
    "off": {"SIPAT_RATE_LIMIT_PASSWORD_CHECKS": "", "SIPAT_PASSWORD_CHECK_CONCURRENCY": "1000"},
    "on": {},  # the defaults
}


def seed(data_dir: Path, url: str) -> None:
    from backend.auth import create_user
    from backend.db import make_engine, make_session_factory, session_scope
    from backend.migrate import upgrade
    from backend.storage import LocalBlobStore
    from tests.backend.factories import make_open_study

    upgrade(url)
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            make_open_study(session, LocalBlobStore(data_dir / "blobs", durable=False))
            create_user(session, ADMIN, PASSWORD, is_admin=True)
    finally:
        engine.dispose()


def ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]:.0f}"


def flood_one(base: str, client_no: int, logins: int) -> list[int]:
    codes = []
    with httpx.Client(base_url=base, timeout=60) as http:
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', http.get("/admin/login").text)
        assert csrf, "no CSRF token on the login page"
        for k in range(logins):
            form = {"csrf_token": csrf[1], "email": f"user{client_no}.{k}@example.org", "password": "wrong guess"}
            headers = {"X-Forwarded-For": f"198.51.100.{client_no % 250}"}
            try:
                codes.append(http.post("/admin/login", data=form, headers=headers).status_code)
            except httpx.HTTPError:
                codes.append(0)
    return codes


def run_mode(name: str, data_dir: Path, url: str, clients: int, logins: int) -> str:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "SIPAT_DATABASE_URL": url,
        "SIPAT_DATA_DIR": str(data_dir),
        "SIPAT_SECRET_KEY": SECRET,
        "SIPAT_ENV": "development",
        "SIPAT_FORWARDED_ALLOW_IPS": "127.0.0.1",
        "SIPAT_RATE_LIMIT_LOGIN_PER_CLIENT": "",
        "SIPAT_RATE_LIMIT_LOGIN_PER_ACCOUNT": "",
        "PYTHONPATH": str(REPO),
        **MODES[name],
    }
    log = data_dir / f"server-{name}.log"
    server = serving(uvicorn_cmd("backend.main:create_app", port), env=env, log=log, ready_url=f"{base}/api/v1/health")
    with server, httpx.Client(base_url=base, timeout=60) as http:
        start = http.post("/api/v1/studies/pilot/sessions", json={"consent": True})
        token = start.json()["token"]

        def next_latency() -> float:
            began = time.perf_counter()
            assert http.get(f"/api/v1/sessions/{token}/next").status_code == 200
            return time.perf_counter() - began

        before = [next_latency() for _ in range(20)]
        during: list[float] = []
        began = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            futures = [pool.submit(flood_one, base, i, logins) for i in range(clients)]
            while not all(f.done() for f in futures) and time.perf_counter() - began < 300:
                during.append(next_latency())
                time.sleep(0.05)
            codes = Counter(c for f in futures for c in f.result())
        flood_s = time.perf_counter() - began
    return (
        f"| {name} | {ms(before, 0.5)} / {ms(before, 0.99)} ms | {ms(during, 0.5)} / {ms(during, 0.95)} / "
        f"{1000 * max(during, default=0):.0f} ms ({len(during)}) | {codes.get(401, 0)} / {codes.get(429, 0)} / "
        f"{sum(v for k, v in codes.items() if k not in (401, 429))} | {flood_s:.1f} s |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=40, help="addresses logging in at once")
    parser.add_argument("--logins-each", type=int, default=3)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="login-flood-") as tmp:
        data_dir = Path(tmp)
        url = f"sqlite:///{data_dir / 'sipat.db'}"
        seed(data_dir, url)
        rows = [run_mode(mode, data_dir, url, args.clients, args.logins_each) for mode in MODES]
    end = os.getloadavg()[0]
    print(f"load average at start {load:.1f}, at end {end:.1f}; {args.clients} addresses x {args.logins_each} logins")
    print("| budget | next before p50 / p99 | next during p50 / p95 / max (n) | hashed / refused / other | flood |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
