"""Rate limits of the public entry points, counted by the `limits` library (moving windows).

What is limited, and why (each limit a `Settings.rate_limit_*` in `limits` notation, e.g. "60/minute"; an
empty value turns that limit off):

* **enrolment**, per client address and per study (per minute, and in a short window from all clients): each
  session start writes a row per trial and takes a counterbalancing slot; a script could otherwise start
  thousands a minute, and a flood from many addresses is refused by the per-study limits before any row is
  written, while the participants already enrolled go on answering;
* **login**, per client address (whatever the e-mail: spraying many addresses) and per account (from all
  clients: one account attacked from many addresses). Both are counted *before* the password is checked, so
  a flood past the limit costs no argon2 hash: that work is what slowed every participant's request;
* **bearer-token failures**, per client address: a request with an unknown token costs a lookup; past the
  limit every request of that client with a bearer token is refused until the window has passed.

Counts live in `Settings.rate_limit_storage`: `memory://` (one process, the embedded default) or a Redis URL
(shared by every API process and host). When the storage cannot be reached the request is let through and a
warning logged: a rate limit is a guard against floods, and must not take the study down with Redis.

Each limit is counted by one atomic `hit` of the storage (a lock in memory, a Lua script in Redis), which counts
the request only if it is allowed: requests in flight at the same moment cannot all pass a limit that has room
for one more (the old test-then-count could). A request under several limits hits them in turn, the narrowest
(this client's) first, and stops at the first refusal: it then has used the allowance of the limits before that
one, never of those after. The trade-off, chosen because no storage offers an atomic test-and-count over
several keys: a client refused by a per-study limit has spent one of its own attempts, whereas a flood from one
address, refused by its own limit first, spends none of the study's allowance that other participants need.
The argon2 budget of all clients together is `backend.hashbudget`.

The client address is the connection's peer, unless that peer is one of `Settings.forwarded_allow_ips`
(a reverse proxy); then it is the last address of `X-Forwarded-For` that is not itself a trusted proxy. A
client that sets the header itself, without such a proxy in front, changes nothing.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.requests import HTTPConnection

from backend.services.errors import ServiceError
from backend.settings import Settings

log = logging.getLogger(__name__)


class RateLimitedError(ServiceError):
    """429 with Retry-After (whole seconds until the window lets one more request through)."""

    status_code = 429

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(f"{message}; retry in {retry_after_s} s", headers={"Retry-After": str(retry_after_s)})
        self.retry_after_s = retry_after_s


def parse_limit(text: str, setting: str) -> RateLimitItem | None:
    """The limit of a setting's text ('60/minute'); None for an empty text (no limit)."""
    if not text.strip():
        return None
    try:
        return parse(text)
    except ValueError:
        raise ValueError(
            f"SIPAT_{setting.upper()}={text!r} is not a rate limit; write it like '60/minute' or '5 per second'"
        ) from None


@dataclass(frozen=True)
class _Rule:
    """One limit (`item`, None = off) and the words of its refusal."""

    item: RateLimitItem | None
    namespace: str
    refusal: str


class RateLimits:
    """The app's rate limits (`app.state.rate_limits`), built once from the settings."""

    def __init__(self, settings: Settings, *, storage: Storage | None = None) -> None:
        self.storage = storage or storage_from_string(settings.rate_limit_storage)
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.trusted_proxies = frozenset(a.strip() for a in settings.forwarded_allow_ips.split(",") if a.strip())

        def rule(name: str, namespace: str, refusal: str) -> _Rule:
            return _Rule(parse_limit(getattr(settings, name), name), namespace, refusal)

        self.enrol_client = rule(
            "rate_limit_enrol_per_client", "enrol-client", "too many sessions started from your address"
        )
        self.enrol_study = rule(
            "rate_limit_enrol_per_study", "enrol-study", "too many participants are joining this study right now"
        )
        self.enrol_burst = rule(
            "rate_limit_enrol_burst_per_study", "enrol-burst", "too many participants are joining this study right now"
        )
        self.login_client = rule("rate_limit_login_per_client", "login-client", "too many login attempts")
        self.login_account = rule(
            "rate_limit_login_per_account", "login-account", "too many login attempts for this account"
        )
        self.token_failures = rule(
            "rate_limit_token_failures_per_client",
            "token-failures",
            "too many requests with an unknown or revoked API token from your address",
        )

    # -- who is asking -----------------------------------------------------------------------------------

    def client_address(self, connection: HTTPConnection) -> str:
        """The address the limits count for (see the module: X-Forwarded-For only through a trusted proxy)."""
        peer = connection.client.host if connection.client else "unknown"
        if peer not in self.trusted_proxies:
            return peer
        forwarded = [a.strip() for a in connection.headers.get("x-forwarded-for", "").split(",") if a.strip()]
        for address in reversed(forwarded):
            if address not in self.trusted_proxies:
                return address
        return peer

    # -- checks --------------------------------------------------------------------------------------------

    def hit(self, *checks: tuple[_Rule, str]) -> None:
        """Count one request against each `(rule, key)` in turn; RateLimitedError at the first one used up.

        Each count is atomic (see the module): the rules before the refusing one have counted this request,
        those after it have not.
        """
        active = [(rule, rule.item, key) for rule, key in checks if rule.item is not None]
        try:
            for rule, item, key in active:
                if not self.limiter.hit(item, rule.namespace, key):
                    raise self._refusal(rule, item, key)
        except RateLimitedError:
            raise
        except Exception as exc:  # the storage (Redis) is unreachable: let the request through, say so
            log.warning("rate limit storage unavailable, request not counted: %s", exc)

    def refuse_if_used_up(self, rule: _Rule, key: str) -> None:
        """RateLimitedError when `rule` is used up for `key`, without counting this request."""
        item = rule.item
        if item is None:
            return
        try:
            allowed = self.limiter.test(item, rule.namespace, key)
        except Exception as exc:
            log.warning("rate limit storage unavailable, request not checked: %s", exc)
            return
        if not allowed:
            raise self._refusal(rule, item, key)

    def _refusal(self, rule: _Rule, item: RateLimitItem, key: str) -> RateLimitedError:
        stats = self.limiter.get_window_stats(item, rule.namespace, key)
        wait = max(1, math.ceil(stats.reset_time - time.time()))
        log.info("rate limited: %s %s (retry in %d s)", rule.namespace, key, wait)
        return RateLimitedError(rule.refusal, retry_after_s=wait)

    # -- the limited actions ----------------------------------------------------------------------------------

    def enrolment(self, connection: HTTPConnection, study_slug: str) -> None:
        """Count a session start of `study_slug` by this client (429 past either limit)."""
        self.hit(
            (self.enrol_client, self.client_address(connection)),
            (self.enrol_burst, study_slug),
            (self.enrol_study, study_slug),
        )

    def login(self, connection: HTTPConnection, email: str) -> None:
        """Count a login attempt for `email` by this client, before its password is checked (429 past a limit)."""
        self.hit((self.login_client, self.client_address(connection)), (self.login_account, email.strip().lower()))

    def check_token_failures(self, connection: HTTPConnection) -> None:
        """429 when this client already sent too many unknown tokens (nothing counted).

        Only failures are counted, after the lookup, so this stays a test: requests in flight together can
        each pass it, and the count then runs past the limit by at most their number before all are refused.
        """
        self.refuse_if_used_up(self.token_failures, self.client_address(connection))

    def token_failed(self, connection: HTTPConnection) -> None:
        """Count an unknown or revoked token sent by this client."""
        rule = self.token_failures
        if rule.item is None:
            return
        try:
            self.limiter.hit(rule.item, rule.namespace, self.client_address(connection))
        except Exception as exc:
            log.warning("rate limit storage unavailable, token failure not counted: %s", exc)
