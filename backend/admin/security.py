"""Admin login sessions: a signed cookie, per-session CSRF tokens, and a throttle on failed logins.

* **Session cookie** `sipat_admin`: `v1.<payload>.<signature>`, the payload base64url JSON `{"u": user id,
  "s": random session id, "e": expiry (unix s), "p": fingerprint of the password hash}` and the signature
  HMAC-SHA256 with a key derived from `Settings.secret_key`. Nothing is stored on the server; changing the
  password (or the secret key) ends every session, and a session ends after `SESSION_TTL_S` at the latest.
  Flags: HttpOnly, SameSite=Lax, Path=/admin, Secure when the request came over HTTPS or the public URL is
  https.
* **CSRF**: every form carries `csrf_token` = HMAC(key, session id), checked on every POST (403 otherwise);
  SameSite=Lax already keeps the cookie off cross-site POSTs, the token also covers same-site attackers. The
  login form, before there is a session, uses a random nonce kept in its own short-lived cookie instead
  (double submit, signed).
* **Throttle**: more than `MAX_FAILURES` failed logins within `WINDOW_S` seconds for one (client address,
  e-mail) are answered 429 until the window has passed. Kept in the memory of the process (one per app), so
  several API processes each count on their own; put a rate limit in the reverse proxy for more.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

SESSION_COOKIE = "sipat_admin"
LOGIN_COOKIE = "sipat_admin_login"
COOKIE_PATH = "/admin"
SESSION_TTL_S = 12 * 3600
LOGIN_NONCE_TTL_S = 3600
MAX_FAILURES = 5
WINDOW_S = 60.0
_VERSION = "v1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def password_fingerprint(password_hash: str, generation: int = 0) -> str:
    """A short digest of the stored hash and the user's session generation: a new password, or a logout
    (which raises `User.session_generation`), makes old cookies invalid (not a secret by itself)."""
    material = password_hash if generation == 0 else f"{generation}|{password_hash}"
    return hashlib.sha256(material.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AdminSession:
    user_id: int
    session_id: str
    expires_at: int
    fingerprint: str


class Signer:
    """Signs and checks session cookies and CSRF tokens with keys derived from the service's secret."""

    def __init__(self, secret_key: str) -> None:
        if not secret_key:
            raise ValueError("the admin sessions need Settings.secret_key; leave it unset to have one generated")
        root = secret_key.encode()
        self._cookie_key = hmac.new(root, b"sipat-admin-session-cookie", hashlib.sha256).digest()
        self._csrf_key = hmac.new(root, b"sipat-admin-csrf", hashlib.sha256).digest()

    def _mac(self, key: bytes, message: str) -> str:
        return _b64(hmac.new(key, message.encode(), hashlib.sha256).digest())

    # -- sessions ----------------------------------------------------------------------------------------

    def new_session(
        self, user_id: int, password_hash: str, *, generation: int = 0, now: float | None = None
    ) -> tuple[str, AdminSession]:
        """(cookie value, session) for a user who just logged in (`generation`: `User.session_generation`)."""
        now = time.time() if now is None else now
        session = AdminSession(
            user_id=user_id,
            session_id=secrets.token_urlsafe(18),
            expires_at=int(now) + SESSION_TTL_S,
            fingerprint=password_fingerprint(password_hash, generation),
        )
        payload = {"u": session.user_id, "s": session.session_id, "e": session.expires_at, "p": session.fingerprint}
        body = f"{_VERSION}.{_b64(json.dumps(payload, separators=(',', ':')).encode())}"
        return f"{body}.{self._mac(self._cookie_key, body)}", session

    def read_session(self, cookie: str | None, *, now: float | None = None) -> AdminSession | None:
        """The session of a cookie with a valid signature that has not expired; None for anything else."""
        if not cookie or cookie.count(".") != 2:
            return None
        version, payload, signature = cookie.split(".")
        body = f"{version}.{payload}"
        if version != _VERSION or not hmac.compare_digest(signature, self._mac(self._cookie_key, body)):
            return None
        try:
            data = json.loads(_unb64(payload))
            session = AdminSession(int(data["u"]), str(data["s"]), int(data["e"]), str(data["p"]))
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        if session.expires_at <= (time.time() if now is None else now):
            return None
        return session

    # -- CSRF ----------------------------------------------------------------------------------------------

    def csrf_token(self, session_id: str) -> str:
        """The CSRF token of a session (or of a login nonce): the same for every form of that session."""
        return self._mac(self._csrf_key, f"csrf|{session_id}")

    def check_csrf(self, session_id: str, token: str | None) -> bool:
        if not token:
            return False
        return hmac.compare_digest(token, self.csrf_token(session_id))

    def new_login_nonce(self) -> str:
        """A signed random value for the login form's cookie (the form carries its CSRF token)."""
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{self._mac(self._cookie_key, 'login|' + nonce)}"

    def read_login_nonce(self, cookie: str | None) -> str | None:
        if not cookie or cookie.count(".") != 1:
            return None
        nonce, signature = cookie.split(".")
        if not hmac.compare_digest(signature, self._mac(self._cookie_key, "login|" + nonce)):
            return None
        return nonce


class LoginThrottle:
    """Failed logins per key within a sliding window; thread-safe (the routes run in a thread pool)."""

    def __init__(
        self, max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.get(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def retry_after(self, key: tuple[str, str]) -> int | None:
        """Seconds until the next attempt is allowed, or None when it is allowed now."""
        with self._lock:
            now = self._clock()
            times = self._recent(key, now)
            if len(times) < self.max_failures:
                return None
            return max(1, int(times[0] + self.window_s - now + 0.999))

    def failed(self, key: tuple[str, str]) -> None:
        with self._lock:
            now = self._clock()
            times = self._recent(key, now)
            times.append(now)
            self._failures[key] = times
            if len(self._failures) > 10_000:  # forget keys whose failures all left the window
                for k in [k for k, v in self._failures.items() if not self._recent(k, now)]:
                    del self._failures[k]

    def succeeded(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._failures.pop(key, None)
