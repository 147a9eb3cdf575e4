"""The load benchmark's HTTP side: one keep-alive connection per participant, the study page's retry policy, and
the counts every request adds to (`Stats`)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any


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
