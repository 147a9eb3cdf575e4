"""A researcher logged in to the dashboard may simulate an open study: its "Pilot" link carries a signed grant."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.api.simulation import GRANT_TTL_S, grant_valid, simulate_grant
from backend.models import Participant
from backend.storage import BlobStore
from tests.backend.factories import make_open_study


def test_logged_in_researcher_may_simulate_an_open_study(
    admin: TestClient, session: Session, storage: BlobStore
) -> None:
    study = make_open_study(session, storage)
    assert 'id="simulate-link"' in admin.get(f"/admin/studies/{study.id}").text
    r = admin.get(f"/admin/studies/{study.id}/simulate", follow_redirects=False)
    assert r.status_code == 303
    location = r.headers["location"]
    grant = parse_qs(urlsplit(location).query)["grant"][0]
    page = admin.get(location)
    assert page.status_code == 200 and '"simulate": true' in page.text and grant in page.text
    body = {"consent": True, "simulate": True, "simulate_grant": grant}
    r = admin.post("/api/v1/studies/pilot/sessions", json=body)
    assert r.status_code == 201, r.text
    session.expire_all()
    assert session.scalar(select(Participant.simulated)) is True
    # Without the grant, or with one altered or made for another study, the same request is refused.
    for bad in (None, grant[:-1] + ("0" if grant[-1] != "0" else "1"), "9999999999.0123456789abcdef0123456789abcdef"):
        r = admin.post("/api/v1/studies/pilot/sessions", json={**body, "simulate_grant": bad})
        assert r.status_code == 403, bad
        assert admin.get("/s/pilot", params={"simulate": "1", "grant": bad or ""}).status_code == 403
    other = make_open_study(session, storage, slug="other")
    assert admin.post("/api/v1/studies/other/sessions", json=body).status_code == 403
    assert other.id != study.id
    # The dashboard's link needs the login.
    admin.cookies.clear()
    assert admin.get(f"/admin/studies/{study.id}/simulate", follow_redirects=False).status_code == 303
    assert "login" in admin.get(f"/admin/studies/{study.id}/simulate", follow_redirects=False).headers["location"]


def test_grant_expires(admin: TestClient, session: Session, storage: BlobStore) -> None:
    make_open_study(session, storage)
    secret = admin.app.state.settings.secret_key.get_secret_value()  # type: ignore[attr-defined]
    old = simulate_grant(secret, "pilot", now=time.time() - GRANT_TTL_S - 1)
    assert not grant_valid(secret, "pilot", old)
    fresh = simulate_grant(secret, "pilot")
    assert grant_valid(secret, "pilot", fresh) and not grant_valid(secret, "other", fresh)
    assert not grant_valid("another-secret", "pilot", fresh)
    r = admin.post("/api/v1/studies/pilot/sessions", json={"consent": True, "simulate": True, "simulate_grant": old})
    assert r.status_code == 403
