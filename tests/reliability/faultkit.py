"""Helpers of the fault tests: the service under uvicorn in a subprocess, and participants
(`tests.simulated_participant`, as in the load benchmark) that retry as the study page does (503 with
Retry-After, connection errors), recording every acknowledged answer."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from tests.answers import discrepancies
from tests.backend.factories import mask_png
from tests.netkit import free_port, serving, uvicorn_cmd
from tests.simulated_participant import Gate, take_part

REPO = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def need(condition: bool, reason: str) -> None:
    """Skip (outside CI) or fail (in CI) when the machine cannot run a fault test."""
    if condition:
        return
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


#: Every simulated participant enrols from 127.0.0.1: the per-client and per-study enrolment limits are for
#: strangers on the internet, not for this test's crowd of one address (backend.ratelimits).
UNLIMITED_ENROLMENT = {
    "SIPAT_RATE_LIMIT_ENROL_PER_CLIENT": "",
    "SIPAT_RATE_LIMIT_ENROL_PER_STUDY": "",
    "SIPAT_RATE_LIMIT_ENROL_BURST_PER_STUDY": "",
}


@contextmanager
def uvicorn_server(env: dict[str, str], log: Path, *, workers: int = 1) -> Iterator[tuple[subprocess.Popen, str]]:
    """`uvicorn --factory backend.main:create_app` on 127.0.0.1 and a free port; (process, base URL)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = uvicorn_cmd("backend.main:create_app", port, workers=workers)
    env = {**os.environ, **UNLIMITED_ENROLMENT, **env}
    with serving(cmd, env=env, log=log, ready_url=f"{base}/api/v1/health") as proc:
        yield proc, base


@dataclass
class Outcome:
    statuses: Counter[int] = field(default_factory=Counter)  # 0 = connection error
    acknowledged: dict[tuple[str, int], tuple[Any, ...]] = field(default_factory=dict)
    completed: int = 0
    errors: list[str] = field(default_factory=list)
    retry_after: set[str] = field(default_factory=set)


async def _call(client: httpx.AsyncClient, out: Outcome, method: str, url: str, **kw: Any) -> httpx.Response:
    for _ in range(150):  # up to ~45 s of retries: longer than a database restart
        try:
            r = await client.request(method, url, **kw)
        except httpx.TransportError:
            out.statuses[0] += 1
            await asyncio.sleep(0.3)
            continue
        out.statuses[r.status_code] += 1
        if r.status_code == 503:
            out.retry_after.add(r.headers.get("retry-after", ""))
            await asyncio.sleep(min(1.0, float(r.headers.get("retry-after") or 1)) * 0.3)
            continue
        return r
    raise RuntimeError(f"{method} {url}: still failing after 150 attempts")


@dataclass(frozen=True)
class FaultAnswers:
    """Participant i's answers: the same every trial, distinct between participants (`tests.answers` compares)."""

    i: int

    def annotation(self, trial: dict[str, Any]) -> dict[str, Any]:
        mask = base64.b64encode(mask_png(trial["mask_width"], trial["mask_height"], fill=100 + self.i)).decode()
        return {"mask_png": mask, "duration_ms": 1000 + self.i}

    def response(self, trial: dict[str, Any]) -> dict[str, Any]:
        i = self.i
        return {"judgment": "perturbed" if i % 2 else "clean", "confidence": 1 + i % 4, "rt_ms": 300.0 + i}


async def _participant(
    client: httpx.AsyncClient, out: Outcome, i: int, slug: str, think_s: float, gate: Gate | None
) -> None:
    async def call(name: str, method: str, path: str, body: dict[str, Any] | None) -> httpx.Response:
        return await _call(client, out, method, path, json=body)

    await take_part(
        call, out, FaultAnswers(i), slug=slug, think_s=lambda: think_s, fetch_media=False, gate=gate, max_trials=200
    )


async def run_participants(base: str, n: int, *, slug: str, think_s: float, gate: Gate | None = None) -> Outcome:
    out = Outcome()
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        results = await asyncio.gather(
            *(_participant(client, out, i, slug, think_s, gate) for i in range(n)), return_exceptions=True
        )
    out.errors += [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    return out


def assert_exactly_once(out: Outcome, engine: Engine) -> None:
    found = discrepancies(engine, out.acknowledged)
    assert not (found.lost or found.duplicated or found.altered), found
