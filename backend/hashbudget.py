"""The budget of argon2 password checks of one API process, shared by every client.

The per-address and per-account login limits (`backend.ratelimits`) do not bound the work of an attacker with
many addresses and many e-mails: each attempt still costs an argon2 hash (~64 MiB, several cores for tens of
milliseconds; unknown e-mails are hashed too, so that timing tells nothing), and a few hundred of them at once
took every core from the participants' requests. Here the hashes of all clients together are bounded, before
any of them runs:

* at most `rate_limit_password_checks` checks start per window (`limits` notation, e.g. "8/second"), counted in
  this process's memory: the budget protects this process's cores, so it is not shared through Redis;
* at most `password_check_concurrency` hashes run at once; up to `password_check_backlog` more attempts wait
  (at most `password_check_wait_s`) for a free slot, and any attempt beyond that is refused at once;
* the admitted hashes run in this budget's own threads at the lowest CPU priority (`HASH_NICE`, Linux: nice is
  per thread, and the threads libargon2 starts for its lanes inherit it), so a participant's request that is
  ready to run takes the core from a hash instead of waiting behind it. Measured with
  `python -m benchmarks.load --abuse` (docs/performance.md): the rate alone kept the hashes few, but each still
  took both cores for its duration, and that was enough to double the participants' p99.

A refusal is a `RateLimitedError` (429 with Retry-After) and has cost no hash. A queue without a bound would
only turn the flood into latency for everyone, the correct administrator included.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

from limits import RateLimitItem
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from backend.ratelimits import RateLimitedError, parse_limit
from backend.settings import Settings

log = logging.getLogger(__name__)

_NAMESPACE = "password-checks"
#: the nice value of the hashing threads: the lowest priority, so any participant's request runs first
HASH_NICE = 19

T = TypeVar("T")


def lower_thread_priority(nice: int = HASH_NICE) -> None:
    """Give the calling thread (and the threads it starts) ``nice``; on Linux only, where nice is per thread.

    Elsewhere (or where the kernel refuses) the thread keeps its priority: the budget's limits still hold."""
    if sys.platform != "linux":
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except OSError as exc:  # pragma: no cover - a kernel or sandbox that forbids it
        log.warning("password checks run at normal priority: %s", exc)


class PasswordCheckBudget:
    """Admission to argon2 for one process: a rate, a number of running hashes and a bounded backlog."""

    def __init__(self, rate: RateLimitItem | None, *, concurrency: int, backlog: int, wait_s: float) -> None:
        if concurrency < 1 or backlog < 0 or wait_s < 0:
            raise ValueError("password checks need concurrency >= 1, backlog >= 0 and wait_s >= 0")
        self.rate = rate
        self.concurrency, self.backlog, self.wait_s = concurrency, backlog, wait_s
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._slots = threading.BoundedSemaphore(concurrency)
        self._executor = ThreadPoolExecutor(concurrency, "argon2", initializer=lower_thread_priority)
        self._lock = threading.Lock()
        self._admitted = 0  # running + waiting

    @classmethod
    def from_settings(cls, settings: Settings) -> PasswordCheckBudget:
        return cls(
            parse_limit(settings.rate_limit_password_checks, "rate_limit_password_checks"),
            concurrency=settings.password_check_concurrency,
            backlog=settings.password_check_backlog,
            wait_s=settings.password_check_wait_s,
        )

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the hash slots for the body; RateLimitedError (nothing hashed) when the budget is spent."""
        with self._lock:
            if self._admitted >= self.concurrency + self.backlog:
                raise self._busy()
            self._admitted += 1
        try:
            if self.rate is not None and not self._limiter.hit(self.rate, _NAMESPACE):
                stats = self._limiter.get_window_stats(self.rate, _NAMESPACE)
                wait = max(1, math.ceil(stats.reset_time - time.time()))
                log.info("password checks: the per-process rate %s is spent (retry in %d s)", self.rate, wait)
                raise RateLimitedError("the server is checking too many logins right now", retry_after_s=wait)
            if not self._slots.acquire(timeout=self.wait_s):
                raise self._busy()
            try:
                yield
            finally:
                self._slots.release()
        finally:
            with self._lock:
                self._admitted -= 1

    def run(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` (an argon2 check) in a slot, on one of the budget's low-priority threads; the caller
        waits for it. RateLimitedError (nothing run) when the budget is spent."""
        with self.slot():
            return self._executor.submit(fn, *args).result()

    def _busy(self) -> RateLimitedError:
        log.info("password checks: %d running and %d waiting, attempt refused", self.concurrency, self.backlog)
        return RateLimitedError("the server is checking too many logins right now", retry_after_s=1)
