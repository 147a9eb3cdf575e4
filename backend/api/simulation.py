"""Who may run a study in simulate mode (`?simulate=1`, a robot participant for piloting).

A simulated session is a researcher's pilot, not data: it is marked (`Participant.simulated`) and left out
of results and exports unless they ask for it. So simulate mode is open only where no real participant can
land in it by accident or on purpose:

* a draft study (its link is not public yet, and a draft takes no real participants at all);
* a logged-in researcher. The dashboard's cookie is scoped to `/admin` (`backend.admin.security.COOKIE_PATH`),
  so the participant page never sees it: the dashboard's "Pilot" link (`/admin/studies/{id}/simulate`) hands
  the browser a *grant* instead, an HMAC of the study's slug and an expiry under the service's secret, valid
  for `GRANT_TTL_S`, which the page passes on to the session start;
* a research API token whose owner may access the study (`require_study_access`'s owner rule), for scripts.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from fastapi import HTTPException, Request
from sqlalchemy.orm import Session

from backend.api.deps import require_study_access
from backend.auth import user_for_token
from backend.models import Study
from backend.services.errors import ForbiddenError

#: How long a dashboard's simulate grant stays valid: long enough for a pilot run or a few.
GRANT_TTL_S = 4 * 3600
SIMULATE_REFUSED = (
    "simulate mode is for researchers: open it from the study's 'Pilot' link on the dashboard (logged in), "
    "or simulate while the study is still a draft"
)


def service_secret(request: Request) -> str:
    """The service's secret (`Settings.secret_key`), the key the grants are signed with."""
    return str(request.app.state.settings.secret_key.get_secret_value())


def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"sipat-simulate-grant", hashlib.sha256).digest()


def _mac(key: bytes, slug: str, expires: int) -> str:
    return hmac.new(key, f"{slug}\n{expires}".encode(), hashlib.sha256).hexdigest()[:32]


def simulate_grant(secret: str, slug: str, *, now: float | None = None) -> str:
    """A grant to simulate study `slug` for `GRANT_TTL_S` (the dashboard's "Pilot" link carries it); `secret`
    is the service's (`service_secret`)."""
    expires = int(time.time() if now is None else now) + GRANT_TTL_S
    return f"{expires}.{_mac(_key(secret), slug, expires)}"


def grant_valid(secret: str, slug: str, grant: str | None, *, now: float | None = None) -> bool:
    """Whether `grant` was made by `simulate_grant` for `slug` and has not expired."""
    if not grant:
        return False
    expires_text, _, mac = grant.partition(".")
    if not expires_text.isdigit() or len(expires_text) > 12:
        return False
    expires = int(expires_text)
    if expires < (time.time() if now is None else now):
        return False
    return hmac.compare_digest(mac, _mac(_key(secret), slug, expires))


def _token_user_may(request: Request, session: Session, study: Study) -> bool:
    """Whether the request's bearer token belongs to a user who may access `study`."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return False
    user = user_for_token(session, token.strip())
    if user is None:
        return False
    try:
        require_study_access(session, user, study.id)
    except HTTPException:
        return False
    return True


def may_simulate(request: Request, session: Session, study: Study, grant: str | None) -> bool:
    """Whether this request may start a simulated session of `study` (see the module's docstring)."""
    return (
        study.status == "draft"
        or grant_valid(service_secret(request), study.slug, grant)
        or _token_user_may(request, session, study)
    )


def check_simulate(request: Request, session: Session, study: Study, grant: str | None) -> None:
    """403 unless `may_simulate`."""
    if not may_simulate(request, session, study, grant):
        raise ForbiddenError(SIMULATE_REFUSED)
