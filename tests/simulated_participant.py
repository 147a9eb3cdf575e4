"""The one simulated participant of the load benchmark (`benchmarks/load/`) and the fault tests
(`tests/reliability/faultkit.py`): enrols, then `next` -> (the image) -> think -> answer until the session is
done, and records every acknowledged answer for the exactly-once check (`tests.answers`).

What differs between the two callers stays with them: the HTTP client and its retry policy (`Call`), what is
answered (`Answers`), how long a participant thinks, and whether the image is fetched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

API = "/api/v1"


class Reply(Protocol):
    """What the walk reads of an answer (an `httpx.Response` or the load benchmark's own `Reply`)."""

    status_code: int
    content: bytes

    def json(self) -> Any: ...

    @property
    def text(self) -> str: ...


#: One request with the caller's retry policy: (name for the statistics, method, path, JSON body or None).
Call = Callable[[str, str, str, "dict[str, Any] | None"], Awaitable[Reply]]
#: Awaited before answer number k (0-based): lets a fault test hold answers back.
Gate = Callable[[int], Awaitable[None]]


class Answers(Protocol):
    """The bodies a participant sends for a trial (the JSON of `GET next`)."""

    def annotation(self, trial: dict[str, Any]) -> dict[str, Any]: ...

    def response(self, trial: dict[str, Any]) -> dict[str, Any]: ...


class Tally(Protocol):
    """Where the walk records: (token, trial id) -> the acknowledged answer, sessions completed, errors."""

    acknowledged: dict[tuple[str, int], tuple[Any, ...]]
    completed: int
    errors: list[str]


async def take_part(
    call: Call,
    tally: Tally,
    answers: Answers,
    *,
    slug: str,
    think_s: Callable[[], float],
    fetch_media: bool = True,
    gate: Gate | None = None,
    max_trials: int = 200,
    deadline: float | None = None,
) -> None:
    """One whole session. Stops at the first answer that is not a success (recorded in `tally.errors`), after
    `max_trials` trials, or at `deadline` (`time.monotonic()`)."""
    r = await call("POST sessions", "POST", f"{API}/studies/{slug}/sessions", {"consent": True})
    if r.status_code not in (200, 201):
        tally.errors.append(f"session: {r.status_code} {r.text[:200]}")
        return
    token = r.json()["token"]
    for k in range(max_trials):
        if deadline is not None and time.monotonic() >= deadline:
            break
        r = await call("GET next", "GET", f"{API}/sessions/{token}/next", None)
        if r.status_code != 200:
            tally.errors.append(f"next: {r.status_code} {r.text[:200]}")
            return
        trial = r.json()
        if trial["done"]:
            tally.completed += 1
            return
        if fetch_media:
            image = await call("GET media", "GET", trial["image_url"], None)
            if image.status_code != 200 or not image.content.startswith(b"\x89PNG"):
                tally.errors.append(f"media: {image.status_code}")
                return
        if wait := think_s():
            await asyncio.sleep(wait)
        if gate is not None:
            await gate(k)
        base = f"{API}/sessions/{token}/trials/{trial['trial_id']}"
        if trial["question"] == "annotate":
            body = answers.annotation(trial)
            r = await call("POST annotation", "POST", f"{base}/annotation", body)
            ack: tuple[Any, ...] = ("annotation", float(body["duration_ms"]))
        else:
            body = answers.response(trial)
            r = await call("POST response", "POST", f"{base}/response", body)
            ack = ("response", body["judgment"], body["confidence"], body["rt_ms"])
        if r.status_code not in (200, 201):
            tally.errors.append(f"answer: {r.status_code} {r.text[:200]}")
            return
        tally.acknowledged[(token, trial["trial_id"])] = ack
    tally.errors.append("the session did not end (deadline or trial limit reached)")
