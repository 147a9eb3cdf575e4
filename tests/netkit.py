"""Small network helpers shared by the tests and benchmarks that start real servers (browser, worker,
reliability, benchmarks/load/)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A loopback TCP port that is free right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def uvicorn_cmd(target: str, port: int, *, workers: int = 1, extra: tuple[str, ...] = ()) -> list[str]:
    """`python -m uvicorn --factory TARGET` on 127.0.0.1:`port`, logging warnings only."""
    return [
        sys.executable, "-m", "uvicorn", "--factory", target, "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers), "--log-level", "warning", *extra,
    ]  # fmt: skip


@contextmanager
def serving(
    cmd: list[str], *, env: dict[str, str], log: Path, ready_url: str, append: bool = False
) -> Iterator[subprocess.Popen]:
    """The server `cmd` in a subprocess (output to `log`, after what it holds if `append`; run from the
    repository root), yielded once `ready_url` answers 200; stopped afterwards (SIGTERM, then SIGKILL after
    15 s)."""
    with open(log, "ab" if append else "wb") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start in 60 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
