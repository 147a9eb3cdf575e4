"""Limits of all clients together, and limits that hold for requests in flight at the same moment:

* a login flood from many addresses and e-mails (past every per-address and per-account limit) runs a bounded
  number of argon2 hashes per process; the rest get 429 + Retry-After at once, and a correct login after the
  flood's window works (`backend.hashbudget`);
* hashes run at most `password_check_concurrency` at a time, and attempts beyond a small backlog are refused
  instead of queued;
* a session-start flood of one study from many addresses is refused past the per-study burst, while a
  participant already enrolled goes on with `next` and answers;
* N concurrent requests at a limit of L: exactly L pass (one atomic hit per limit; the old test-then-count let
  requests in flight pass together, made visible here by a storage that answers slowly), in memory and in Redis;
* a request refused by its client's own limit spends none of the study's allowance;
* hashes run on threads of the lowest CPU priority (and so do the threads they start), the caller's is unchanged.
"""

from __future__ import annotations

import dataclasses
import math
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from limits.storage import MemoryStorage, Storage, storage_from_string
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend import auth
from backend.hashbudget import HASH_NICE, PasswordCheckBudget
from backend.main import create_app
from backend.models import Participant
from backend.ratelimits import RateLimitedError, RateLimits, parse_limit
from backend.settings import Settings
from backend.storage import BlobStore
from tests.backend.factories import make_open_study, make_user
from tests.backend.protocol_steps import answer, next_trial, start
from tests.security.securitykit import ADMIN_EMAIL, ADMIN_PASSWORD, csrf_from

#: every per-address and per-account limit off, and X-Forwarded-For believed: only the global budget stands
NO_PER_CLIENT_LIMITS = {
    "rate_limit_login_per_client": "",
    "rate_limit_login_per_account": "",
    "rate_limit_enrol_per_client": "",
    "forwarded_allow_ips": "testclient",
}


@pytest.fixture
def app_client(settings: Settings) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        client = TestClient(create_app(settings.model_copy(update={**NO_PER_CLIENT_LIMITS, **overrides})))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


class _Hasher:
    """argon2's hasher, counting its hashes and the most that ran at once; `delay_s` makes each one last."""

    def __init__(self, inner: Any, delay_s: float = 0.0) -> None:
        self.inner, self.delay_s = inner, delay_s
        self.calls = self.running = self.most_running = 0
        self._lock = threading.Lock()

    def _run(self, work: Callable[[], Any]) -> Any:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            time.sleep(self.delay_s)
            return work()
        finally:
            with self._lock:
                self.running -= 1

    def hash(self, password: str) -> str:
        return self._run(lambda: self.inner.hash(password))

    def verify(self, hashed: str, password: str) -> bool:
        return self._run(lambda: self.inner.verify(hashed, password))

    def check_needs_rehash(self, hashed: str) -> bool:
        return self.inner.check_needs_rehash(hashed)


def _hasher(monkeypatch: pytest.MonkeyPatch, delay_s: float = 0.0) -> _Hasher:
    counting = _Hasher(auth._hasher, delay_s)
    monkeypatch.setattr(auth, "_hasher", counting)
    return counting


def _login_flood(client: TestClient, n: int) -> list[Any]:
    """`n` logins at once, each from its own address with its own (unknown) e-mail; their responses."""
    csrf = csrf_from(client.get("/admin/login").text)  # one nonce cookie, shared by the flood's requests
    barrier = threading.Barrier(n)

    def one(i: int) -> Any:
        form = {"csrf_token": csrf, "email": f"user{i}@example.org", "password": "wrong password", "next": "/admin"}
        barrier.wait()
        headers = {"X-Forwarded-For": f"198.51.100.{i}"}
        return client.post("/admin/login", data=form, headers=headers, follow_redirects=False)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def _login(client: TestClient, email: str, password: str) -> Any:
    form = {"csrf_token": csrf_from(client.get("/admin/login").text), "email": email, "password": password}
    return client.post("/admin/login", data=form | {"next": "/admin"}, follow_redirects=False)


def test_a_login_flood_from_many_addresses_runs_a_bounded_number_of_hashes(
    app_client: Callable[..., TestClient], session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_user(session, ADMIN_EMAIL, password=ADMIN_PASSWORD, admin=True)
    session.commit()
    window_s, allowed = 3, 5
    client = app_client(
        rate_limit_password_checks=f"{allowed} per {window_s} seconds",
        password_check_concurrency=2,
        password_check_backlog=40,  # only the rate refuses here
        password_check_wait_s=30,
    )
    hasher = _hasher(monkeypatch)
    began = time.monotonic()
    responses = _login_flood(client, 40)
    elapsed = time.monotonic() - began
    codes = [r.status_code for r in responses]
    assert set(codes) <= {401, 429}, codes
    assert codes.count(401) == hasher.calls  # every hash answered 'wrong password', every refusal hashed nothing
    # a moving window: at most `allowed` in any `window_s` seconds
    assert 1 <= hasher.calls <= allowed * math.ceil(elapsed / window_s), (hasher.calls, elapsed)
    refused = [r for r in responses if r.status_code == 429]
    assert len(refused) >= 40 - allowed * math.ceil(elapsed / window_s)
    assert all(1 <= int(r.headers["Retry-After"]) <= window_s for r in refused)
    assert all("Too many login attempts" in r.text for r in refused)
    time.sleep(window_s + 0.1)  # the flood's window has passed
    assert _login(client, ADMIN_EMAIL, ADMIN_PASSWORD).status_code == 303


def test_hashes_run_a_few_at_a_time_and_a_flood_past_the_backlog_is_refused_not_queued(
    app_client: Callable[..., TestClient], session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = app_client(
        rate_limit_password_checks="", password_check_concurrency=1, password_check_backlog=1, password_check_wait_s=10
    )
    hasher = _hasher(monkeypatch, delay_s=0.5)  # each hash holds its slot long enough for the flood to arrive
    began = time.monotonic()
    responses = _login_flood(client, 12)
    codes = [r.status_code for r in responses]
    assert hasher.most_running == 1
    assert set(codes) <= {401, 429} and codes.count(401) == hasher.calls
    assert codes.count(429) >= 6, codes  # 1 running + 1 waiting admitted at a time; the rest refused at once
    assert all(r.headers["Retry-After"] == "1" for r in responses if r.status_code == 429)
    assert time.monotonic() - began < 0.5 * 12  # not served one after another


def test_the_budget_admits_the_running_and_the_backlog_and_refuses_the_rest() -> None:
    budget = PasswordCheckBudget(None, concurrency=2, backlog=1, wait_s=30)
    release, outcomes = threading.Event(), []
    entered = threading.Semaphore(0)

    def attempt() -> None:
        try:
            with budget.slot():
                entered.release()
                release.wait(30)
            outcomes.append("ran")
        except RateLimitedError as exc:
            outcomes.append(f"refused {exc.retry_after_s}")
            entered.release()

    threads = [threading.Thread(target=attempt) for _ in range(10)]
    for thread in threads[:2]:  # two take the slots
        thread.start()
        assert entered.acquire(timeout=10)
    for thread in threads[2:]:  # one waits, seven are refused at once
        thread.start()
    for _ in range(7):
        assert entered.acquire(timeout=10)
    assert outcomes == ["refused 1"] * 7
    release.set()
    for thread in threads:
        thread.join(10)
    assert sorted(outcomes) == ["ran"] * 3 + ["refused 1"] * 7
    with budget.slot():  # all slots free again
        pass


def test_a_start_flood_is_refused_per_study_while_enrolled_participants_go_on(
    app_client: Callable[..., TestClient], session: Session, storage: BlobStore
) -> None:
    make_open_study(session, storage)
    client = app_client(rate_limit_enrol_burst_per_study="4 per 30 seconds")
    token = start(client).json()["token"]
    codes = [
        client.post(
            "/api/v1/studies/pilot/sessions", json={"consent": True}, headers={"X-Forwarded-For": f"203.0.113.{i}"}
        )
        for i in range(20)
    ]
    assert [r.status_code for r in codes] == [201] * 3 + [429] * 17
    assert all(1 <= int(r.headers["Retry-After"]) <= 30 for r in codes[3:])
    assert "too many participants are joining" in codes[-1].json()["detail"]
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Participant)) == 4
    trial = next_trial(client, token)  # the enrolled participant is not refused
    assert answer(client, token, trial).status_code == 201
    assert next_trial(client, token)["trial_id"] != trial["trial_id"]


class _SlowWindows(MemoryStorage):
    """Memory storage whose read of a window takes a while: the gap between a test and its count made wide,
    as it is under load or across the network to Redis."""

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        window = super().get_moving_window(key, limit, expiry)
        time.sleep(0.05)
        return window


def _concurrent_hits(limits: RateLimits, key: str, n: int) -> int:
    rule = limits.enrol_study
    barrier = threading.Barrier(n)

    def one(_: int) -> bool:
        barrier.wait()
        try:
            limits.hit((rule, key))
        except RateLimitedError:
            return False
        return True

    with ThreadPoolExecutor(n) as pool:
        return sum(pool.map(one, range(n)))


@pytest.mark.parametrize("limit", [1, 7])
def test_concurrent_requests_at_a_limit_pass_exactly_the_limit_in_memory(settings: Settings, limit: int) -> None:
    limits = RateLimits(
        settings.model_copy(update={"rate_limit_enrol_per_study": f"{limit}/minute"}), storage=_SlowWindows()
    )
    assert _concurrent_hits(limits, "pilot", 40) == limit


@pytest.mark.redis
def test_concurrent_requests_at_a_limit_pass_exactly_the_limit_in_redis(settings: Settings, redis_url: str) -> None:
    storage: Storage = storage_from_string(redis_url)
    limits = RateLimits(settings.model_copy(update={"rate_limit_enrol_per_study": "7/minute"}), storage=storage)
    assert _concurrent_hits(limits, f"s{secrets.token_hex(6)}", 40) == 7
    other = RateLimits(settings.model_copy(update={"rate_limit_enrol_per_study": "7/minute"}), storage=storage)
    assert _concurrent_hits(other, f"s{secrets.token_hex(6)}", 3) == 3  # another key has its own allowance


def test_a_client_refused_by_its_own_limit_spends_none_of_the_studys(settings: Settings) -> None:
    limits = RateLimits(settings.model_copy(update={"rate_limit_enrol_per_study": "5/minute"}))
    rule = dataclasses.replace(limits.enrol_client, item=parse_limit("2/minute", "rate_limit_enrol_per_client"))

    def enrol(address: str) -> bool:
        try:
            limits.hit((rule, address), (limits.enrol_study, "pilot"))
        except RateLimitedError:
            return False
        return True

    assert [enrol("192.0.2.1") for _ in range(10)] == [True] * 2 + [False] * 8  # 8 refused by its own limit
    assert [enrol(f"192.0.2.{i}") for i in range(2, 7)] == [True] * 3 + [False] * 2  # the study had 3 left


@pytest.mark.skipif(sys.platform != "linux", reason="nice is per thread on Linux only; elsewhere hashes keep it")
def test_hashes_run_on_low_priority_threads_and_the_threads_they_start_inherit_it() -> None:
    """A participant's request that is ready to run must take the core from a hash (docs/performance.md)."""
    budget = PasswordCheckBudget(None, concurrency=1, backlog=0, wait_s=1)

    def nice_here() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def nice_of_a_started_thread() -> int:  # libargon2 starts a thread per lane from the hashing thread
        seen: list[int] = []
        worker = threading.Thread(target=lambda: seen.append(nice_here()))
        worker.start()
        worker.join(10)
        return seen[0]

    caller = nice_here()
    assert budget.run(nice_here) == HASH_NICE > caller
    assert budget.run(nice_of_a_started_thread) == HASH_NICE
    assert nice_here() == caller  # the caller's thread keeps its priority
    assert budget.run(auth.verify_password, auth.hash_password("a-password"), "a-password") is True


def test_run_refuses_without_running_when_the_budget_is_spent() -> None:
    budget = PasswordCheckBudget(parse_limit("1 per minute", "test"), concurrency=1, backlog=0, wait_s=1)
    calls: list[int] = []
    assert budget.run(calls.append, 1) is None
    with pytest.raises(RateLimitedError):
        budget.run(calls.append, 2)
    assert calls == [1]
