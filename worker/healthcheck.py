"""`python -m worker.healthcheck`: exit 0 when this host's worker process is alive, 1 otherwise.

For `docker compose` (the worker service's `healthcheck`) and other orchestrators. A worker touches its alive
file (`Settings.worker_alive_file`) every `ALIVE_INTERVAL_S` from a thread of its own (`AliveFile`, started
when the worker is ready, the file removed when it stops), and the check reads the file's age. Not a Celery
ping: a `--pool=solo` worker runs its job in the main thread and answers no remote control until the job ends,
so a ping would call every worker unhealthy for the hours of a training run. `--ping` adds that ping anyway
(for `--pool=prefork` workers on a broker with broadcast, i.e. Redis; kombu's SQLAlchemy transport has none).

It imports neither torch nor the worker's tasks, so a check every few seconds costs a `stat`, not an import of
torch.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from pathlib import Path

from backend.queue import make_celery
from backend.settings import get_settings

#: Seconds between two touches of the alive file; the check allows `STALE_AFTER_INTERVALS` of them to pass.
ALIVE_INTERVAL_S = 5.0
STALE_AFTER_INTERVALS = 6


class AliveFile:
    """Touches `path` every `interval_s` seconds in a daemon thread until `stop()` (which removes it)."""

    def __init__(self, path: Path, interval_s: float = ALIVE_INTERVAL_S) -> None:
        self.path = path
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sipat-alive-file", daemon=True)

    def start(self) -> AliveFile:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 1)
        self.path.unlink(missing_ok=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.path.touch()
            except OSError as exc:  # a full /tmp: the check will say so by failing
                print(f"cannot touch {self.path}: {exc}", file=sys.stderr)
            self._stop.wait(self.interval_s)


def alive_age_s(path: Path) -> float | None:
    """Seconds since `path` was last touched, or None when it does not exist."""
    try:
        return max(0.0, time.time() - path.stat().st_mtime)
    except FileNotFoundError:
        return None


def ping(name: str, *, timeout_s: float) -> bool:
    """True when the worker node `name` answered a Celery ping within `timeout_s` seconds."""
    app = make_celery(get_settings())
    try:
        replies = app.control.ping(destination=[name], timeout=timeout_s)
    except Exception as exc:  # the broker is away
        print(f"worker healthcheck: broker unreachable: {exc}", file=sys.stderr)
        return False
    finally:
        app.close()
    return any(name in reply for reply in replies)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.healthcheck", description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=None, help="the alive file (default: the settings')")
    parser.add_argument(
        "--max-age", type=float, default=ALIVE_INTERVAL_S * STALE_AFTER_INTERVALS, help="seconds; older is dead"
    )
    parser.add_argument("--ping", action="store_true", help="also ping the worker through the broker")
    parser.add_argument("--name", default=f"celery@{socket.gethostname()}", help="the worker's node name (--ping)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the ping's answer")
    args = parser.parse_args(argv)
    path = args.file or get_settings().worker_alive_file
    age = alive_age_s(path)
    if age is None or age > args.max_age:
        seen = "does not exist" if age is None else f"was last touched {age:.0f} s ago"
        print(f"worker healthcheck: {path} {seen} (limit {args.max_age:g} s)", file=sys.stderr)
        return 1
    if args.ping and not ping(args.name, timeout_s=args.timeout):
        print(f"worker healthcheck: no answer from {args.name} within {args.timeout:g} s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
