"""Researcher accounts: argon2id password hashes and bearer tokens for the research API.

Tokens are shown to the user once (`create_token` returns the plaintext) and stored only as their sha256, so a
copy of the database grants no access. A token is a random 256-bit string, so a plain (unsalted) hash is as
strong as a password hash here and can be looked up by equality.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import ApiToken, User, utcnow

TOKEN_PREFIX = "sipat_"
MIN_PASSWORD_LENGTH = 8
#: `last_used_at` is refreshed at most this often, so reads do not turn into a write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)

#: argon2id at OWASP's first recommended setting (Password Storage Cheat Sheet: 19 MiB, 2 passes, 1 lane), not
#: argon2-cffi's default (RFC 9106's low-memory profile: 64 MiB, 3 passes, 4 lanes). Why: a login flood within
#: every limit still hashes, and the default's ~220 ms of CPU over up to 4 threads per hash took both cores from
#: the participants (`python -m benchmarks.load --abuse`: p99 of `next` 88 -> 201 ms); this setting costs ~28 ms
#: on one thread. Hashes made with other parameters still verify and are rehashed at the next correct login.
ARGON2_TIME_COST, ARGON2_MEMORY_KIB, ARGON2_LANES = 2, 19 * 1024, 1


def make_hasher() -> PasswordHasher:
    """The production hasher (tests swap in a cheaper one for speed; this is what they check the setting of)."""
    return PasswordHasher(time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB, parallelism=ARGON2_LANES)


_hasher = make_hasher()


def hash_password(password: str) -> str:
    """An argon2id hash (salt and parameters included) of `password`."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def normalize_email(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or email.startswith("@") or email.endswith("@"):
        raise ValueError(f"not an e-mail address: {email!r}")
    return email


def get_user_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == normalize_email(email)))


def create_user(session: Session, email: str, password: str, *, is_admin: bool = False) -> User:
    user = User(email=normalize_email(email), password_hash=hash_password(password), is_admin=is_admin)
    session.add(user)
    session.flush()
    return user


def authenticate_password(session: Session, email: str, password: str) -> User | None:
    """The user if `password` is right; rehashes on the fly when argon2's parameters were raised."""
    user = get_user_by_email(session, email)
    if user is None:
        _hasher.hash(password)  # same work either way: no timing hint that the e-mail exists
        return None
    if not verify_password(user.password_hash, password):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def token_hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def create_token(session: Session, user: User, *, name: str = "") -> str:
    """A new API token for `user`; returns the plaintext (shown once), stores only its sha256."""
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_hash=token_hash(plaintext), name=name))
    session.flush()
    return plaintext


def find_token(session: Session, token_or_id: str) -> ApiToken | None:
    """The token row named by its numeric id or by the plaintext token."""
    if token_or_id.isdigit():
        return session.get(ApiToken, int(token_or_id))
    return session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token_or_id)))


def revoke_token(session: Session, token: ApiToken) -> None:
    """Revoke `token` (idempotent: revoking twice keeps the first revocation time)."""
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()


def user_for_token(session: Session, plaintext: str) -> User | None:
    """The owner of a valid, unrevoked token, or None; records when the token was last used."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(plaintext)))
    if row is None or row.revoked_at is not None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        row.last_used_at = now
    return row.user
