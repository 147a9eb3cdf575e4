"""The load benchmark's crowd: the simulated participants (`tests.simulated_participant.take_part` with this
benchmark's answers), the probe of the bare app beside them, and the bare app alone at the same concurrency."""

from __future__ import annotations

import asyncio
import base64
import io
import random
import time
from typing import Any

from benchmarks import abuse  # the floods of --abuse
from benchmarks.load.client import Connection, Reply, Stats, call
from tests.simulated_participant import take_part  # one participant for the fault tests too


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
