"""Floods, sent as the issue's probes sent them, stay bounded in count (`backend.ratelimits`):

* an enrolment flood from one address: the first N sessions start, the rest get 429 + Retry-After and write
  no row; a forged X-Forwarded-For changes nothing unless the peer is a configured proxy; the per-study limit
  holds across addresses;
* a login flood, spraying e-mails from one address or one e-mail from many addresses: refused 429 past the
  limit *without an argon2 hash* (the hasher's calls are counted);
* bearer-token guessing: past the limit of failures the client is refused 429 before any lookup;
* counts shared through Redis between two apps (two API processes); an unreachable storage lets requests
  through (a rate limit must not take the study down).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend import auth
from backend.auth import create_token
from backend.main import create_app
from backend.models import Participant
from backend.ratelimits import RateLimits, parse_limit
from backend.settings import Settings
from backend.storage import BlobStore
from tests.backend.factories import make_open_study, make_user
from tests.security.securitykit import ADMIN_EMAIL, ADMIN_PASSWORD, csrf_from


@pytest.fixture
def limited(settings: Settings) -> Iterator[Any]:
    """`limited(**overrides)`: a client of an app whose settings have these rate-limit values."""
    clients: list[TestClient] = []

    def make(**overrides: str) -> TestClient:
        client = TestClient(create_app(settings.model_copy(update=overrides)))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def _participants(session: Session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Participant)) or 0


def _enrol(client: TestClient, slug: str = "pilot", forwarded: str | None = None) -> Any:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return client.post(f"/api/v1/studies/{slug}/sessions", json={"consent": True}, headers=headers)


def test_an_enrolment_flood_from_one_address_is_bounded(limited: Any, session: Session, storage: BlobStore) -> None:
    make_open_study(session, storage)
    client = limited(rate_limit_enrol_per_client="5/minute")
    codes = [_enrol(client, forwarded=f"10.0.0.{i}").status_code for i in range(40)]  # a forged header each time
    assert codes == [201] * 5 + [429] * 35
    refused = _enrol(client)
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "too many sessions" in refused.json()["detail"]
    assert _participants(session) == 5


def test_a_trusted_proxy_names_the_client(limited: Any, session: Session, storage: BlobStore) -> None:
    make_open_study(session, storage)
    client = limited(rate_limit_enrol_per_client="2/minute", forwarded_allow_ips="testclient")
    assert [_enrol(client, forwarded="203.0.113.7").status_code for _ in range(3)] == [201, 201, 429]
    assert _enrol(client, forwarded="spoofed, 203.0.113.8").status_code == 201  # the proxy appended .8
    assert _enrol(client, forwarded="203.0.113.7, testclient").status_code == 429  # proxies are skipped


def test_the_per_study_limit_holds_across_addresses(limited: Any, session: Session, storage: BlobStore) -> None:
    make_open_study(session, storage)
    client = limited(rate_limit_enrol_per_study="4/minute", forwarded_allow_ips="testclient")
    codes = [_enrol(client, forwarded=f"198.51.100.{i}").status_code for i in range(10)]
    assert codes == [201] * 4 + [429] * 6
    assert _participants(session) == 4


class _CountingHasher:
    """argon2's hasher with a count of the hashes it computed (verify and hash)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, 0

    def hash(self, password: str) -> str:
        self.calls += 1
        return self.inner.hash(password)

    def verify(self, hashed: str, password: str) -> bool:
        self.calls += 1
        return self.inner.verify(hashed, password)

    def check_needs_rehash(self, hashed: str) -> bool:
        return self.inner.check_needs_rehash(hashed)


def _login(client: TestClient, email: str, password: str, forwarded: str | None = None) -> Any:
    page = client.get("/admin/login")
    form = {"csrf_token": csrf_from(page.text), "email": email, "password": password, "next": "/admin"}
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return client.post("/admin/login", data=form, headers=headers, follow_redirects=False)


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> _CountingHasher:
    counting = _CountingHasher(auth._hasher)
    monkeypatch.setattr(auth, "_hasher", counting)
    return counting


def test_a_login_spray_from_one_address_costs_no_hash_past_the_limit(
    limited: Any, session: Session, hasher: _CountingHasher
) -> None:
    make_user(session, ADMIN_EMAIL, password=ADMIN_PASSWORD, admin=True)
    # the global budget of argon2 (backend.hashbudget, tests/security/test_global_budget.py) off: this limit alone
    client = limited(
        rate_limit_login_per_client="6/minute", rate_limit_login_per_account="", rate_limit_password_checks=""
    )
    hasher.calls = 0
    codes = [_login(client, f"user{i}@example.org", "wrong password").status_code for i in range(30)]
    assert codes == [401] * 6 + [429] * 24
    assert hasher.calls == 6  # one argon2 run per attempt within the limit, none after
    refused = _login(client, ADMIN_EMAIL, ADMIN_PASSWORD)  # even the right password waits
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1


def test_one_account_attacked_from_many_addresses_is_bounded(
    limited: Any, session: Session, hasher: _CountingHasher
) -> None:
    make_user(session, ADMIN_EMAIL, password=ADMIN_PASSWORD, admin=True)
    client = limited(
        rate_limit_login_per_account="4/minute", forwarded_allow_ips="testclient", rate_limit_password_checks=""
    )
    hasher.calls = 0
    codes = [_login(client, ADMIN_EMAIL, f"guess {i}", forwarded=f"192.0.2.{i}").status_code for i in range(20)]
    assert codes == [401] * 4 + [429] * 16 and hasher.calls == 4
    assert _login(client, "other@example.org", "wrong password", forwarded="192.0.2.99").status_code == 401


def test_token_guessing_is_refused_past_the_limit(limited: Any, session: Session) -> None:
    token = create_token(session, make_user(session, "researcher@example.org", admin=False))
    session.commit()
    client = limited(rate_limit_token_failures_per_client="5/minute")
    guesses = [
        client.get("/api/v1/studies", headers={"Authorization": f"Bearer sipat_{secrets.token_urlsafe(32)}"})
        for _ in range(12)
    ]
    assert [r.status_code for r in guesses] == [401] * 5 + [429] * 7
    refused = client.get("/api/v1/studies", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    other = limited(rate_limit_token_failures_per_client="5/minute")  # another process: its own memory
    assert other.get("/api/v1/studies", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_redis_shares_the_counts_between_processes(
    limited: Any, redis_url: str, session: Session, storage: BlobStore
) -> None:
    slug = f"s{secrets.token_hex(6)}"  # keys of their own in the shared Redis database
    make_open_study(session, storage, slug=slug)
    overrides = {"rate_limit_storage": redis_url, "rate_limit_enrol_per_study": "3/minute"}
    first, second = limited(**overrides), limited(**overrides)
    codes = [_enrol(c, slug).status_code for c in (first, second, first, second, first)]
    assert codes == [201, 201, 201, 429, 429]


def test_an_unreachable_storage_lets_requests_through(
    limited: Any, session: Session, storage: BlobStore, caplog: pytest.LogCaptureFixture
) -> None:
    make_open_study(session, storage)
    client = limited(
        rate_limit_storage="redis://127.0.0.1:1/0?socket_connect_timeout=0.2", rate_limit_enrol_per_client="1/minute"
    )
    assert [_enrol(client).status_code for _ in range(3)] == [201] * 3
    assert "rate limit storage unavailable" in caplog.text


def test_limits_are_read_and_checked(settings: Settings) -> None:
    assert parse_limit("", "x") is None
    assert parse_limit("60/minute", "x") is not None
    with pytest.raises(ValueError, match="SIPAT_RATE_LIMIT_ENROL_PER_CLIENT"):
        RateLimits(settings.model_copy(update={"rate_limit_enrol_per_client": "lots"}))
