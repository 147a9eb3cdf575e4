"""Dashboard sessions end when the user logs out: a kept copy of the cookie and its CSRF token is refused
afterwards (the issue's probe: both worked for 12 h), in every browser of that account; a new login works."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from backend.admin.security import SESSION_COOKIE
from backend.models import Study
from backend.storage import BlobStore
from tests.backend.factories import make_open_study
from tests.security.securitykit import admin_login, csrf_from


def test_logout_ends_the_session_for_a_kept_cookie(
    admin_client: TestClient, session: Session, storage: BlobStore
) -> None:
    study = make_open_study(session, storage)
    cookie = admin_client.cookies.get(SESSION_COOKIE)
    csrf = csrf_from(admin_client.get(f"/admin/studies/{study.id}").text)
    other_browser = TestClient(admin_client.app)
    other_browser.cookies.set(SESSION_COOKIE, cookie, path="/admin")  # the same account elsewhere
    assert other_browser.get("/admin", follow_redirects=False).status_code == 200

    r = admin_client.post("/admin/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303

    admin_client.cookies.set(SESSION_COOKIE, cookie, path="/admin")  # the attacker's copy, replayed
    assert admin_client.get("/admin", follow_redirects=False).status_code == 303  # to the login page
    r = admin_client.post(f"/admin/studies/{study.id}/close", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 401
    session.expire_all()
    assert session.get(Study, study.id).status == "open"  # nothing changed
    assert other_browser.get("/admin", follow_redirects=False).status_code == 303

    admin_client.cookies.clear()
    assert admin_login(admin_client).status_code == 303  # logging in again gives a working session
    assert admin_client.get("/admin", follow_redirects=False).status_code == 200
