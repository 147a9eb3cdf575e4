"""Passwords (argon2id) and API tokens: stored hashed only, revocable, enforced by the Bearer dependency."""

from __future__ import annotations

import hashlib

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend import auth
from backend.models import ApiToken, User
from tests.backend.factories import BOTH_DATABASES, make_user


def test_password_hashing() -> None:
    hashed = auth.hash_password("correct horse")
    assert hashed.startswith("$argon2id$") and "correct horse" not in hashed
    assert auth.verify_password(hashed, "correct horse")
    assert not auth.verify_password(hashed, "wrong horse")
    assert not auth.verify_password("not a hash", "correct horse")
    assert auth.hash_password("correct horse") != hashed  # salted
    with pytest.raises(ValueError, match="at least 8"):
        auth.hash_password("short")


def test_new_hashes_use_the_owasp_setting_and_old_ones_are_rehashed_at_login(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cheaper argon2 setting (backend.auth) applies to new hashes; an account hashed with argon2-cffi's
    default still logs in, and its hash is replaced by one at the new setting; a wrong password replaces nothing."""
    monkeypatch.setattr(auth, "_hasher", auth.make_hasher())  # the production setting, not the tests' cheap one
    fresh = auth.hash_password("a-password")
    assert f"$m={auth.ARGON2_MEMORY_KIB},t={auth.ARGON2_TIME_COST},p={auth.ARGON2_LANES}$" in fresh
    user = make_user(session, "old@example.org", password="a-password")
    old = PasswordHasher().hash("a-password")  # 64 MiB, 3 passes, 4 lanes
    assert "$m=65536,t=3,p=4$" in old
    user.password_hash = old
    session.flush()
    assert auth.authenticate_password(session, "old@example.org", "wrong-password") is None
    assert user.password_hash == old
    assert auth.authenticate_password(session, "old@example.org", "a-password") is user
    assert f"$m={auth.ARGON2_MEMORY_KIB},t={auth.ARGON2_TIME_COST},p={auth.ARGON2_LANES}$" in user.password_hash
    assert auth.verify_password(user.password_hash, "a-password")


def test_authenticate_password(session: Session) -> None:
    make_user(session, "Ada@Example.org")
    assert session.scalar(select(User.email)) == "ada@example.org"
    assert auth.authenticate_password(session, "ADA@example.org", "correct horse") is not None
    assert auth.authenticate_password(session, "ada@example.org", "wrong") is None
    assert auth.authenticate_password(session, "nobody@example.org", "correct horse") is None


def test_token_stored_only_as_sha256(session: Session) -> None:
    user = make_user(session)
    plaintext = auth.create_token(session, user, name="laptop")
    session.commit()
    row = session.scalar(select(ApiToken))
    assert row.token_hash == hashlib.sha256(plaintext.encode()).hexdigest() and row.name == "laptop"
    assert plaintext not in {row.token_hash, row.name} and len(plaintext) > 40
    assert auth.user_for_token(session, plaintext).id == user.id
    assert row.last_used_at is not None
    assert auth.user_for_token(session, plaintext + "x") is None
    assert auth.create_token(session, user) != plaintext


def test_revocation(session: Session) -> None:
    user = make_user(session)
    plaintext = auth.create_token(session, user)
    row = auth.find_token(session, plaintext)
    assert auth.find_token(session, str(row.id)) is row
    auth.revoke_token(session, row)
    first = row.revoked_at
    auth.revoke_token(session, row)
    assert row.revoked_at == first is not None
    assert auth.user_for_token(session, plaintext) is None


@BOTH_DATABASES
def test_bearer_dependency(client: TestClient, session: Session) -> None:
    user = make_user(session)
    token = auth.create_token(session, user)
    session.commit()

    missing = client.get("/api/v1/users/me")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert "create-token" in missing.json()["detail"]
    wrong = client.get("/api/v1/users/me", headers={"Authorization": "Bearer sipat_nope"})
    assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"]
    basic = client.get("/api/v1/users/me", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401

    ok = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and ok.json()["email"] == "ada@example.org" and ok.json()["is_admin"]
    assert "password_hash" not in ok.json()

    auth.revoke_token(session, auth.find_token(session, token))
    session.commit()
    revoked = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert revoked.status_code == 401 and "www-authenticate" in revoked.headers
