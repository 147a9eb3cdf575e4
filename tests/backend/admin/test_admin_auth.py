"""Admin login: no session -> redirect (GET) or 401 (POST); CSRF on every POST; the login throttle; cookies."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from backend.admin.security import SESSION_COOKIE, SESSION_TTL_S, LoginThrottle, Signer
from backend.auth import hash_password
from backend.models import Study
from backend.settings import Settings
from backend.storage import BlobStore
from tests.backend.admin.admin_factories import PASSWORD, csrf_of, log_in
from tests.backend.factories import make_open_study, make_user


def _set_cookie(response) -> str:
    return "\n".join(v for k, v in response.headers.multi_items() if k.lower() == "set-cookie")


def _login_attempt(client: TestClient, email: str, password: str):
    token = csrf_of(client.get("/admin/login").text)
    return client.post(
        "/admin/login", data={"email": email, "password": password, "csrf_token": token}, follow_redirects=False
    )


def test_pages_redirect_to_login_and_actions_are_refused_without_a_session(client: TestClient) -> None:
    for path in ("/admin", "/admin/studies/1", "/admin/studies/1/results?n_boot=5", "/admin/jobs/progress.json"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/admin/login?next=%2Fadmin")
    r = client.get("/admin/studies/1/results?n_boot=5", follow_redirects=False)
    assert r.headers["location"] == "/admin/login?next=%2Fadmin%2Fstudies%2F1%2Fresults%3Fn_boot%3D5"
    for path in ("/admin/studies", "/admin/studies/1/close", "/admin/logout", "/admin/training"):
        r = client.post(path, data={"csrf_token": "x"}, follow_redirects=False)
        assert r.status_code == 401, path
        assert "log in" in r.text
    assert client.get("/admin/login").status_code == 200
    assert client.get("/static/admin/admin.js").status_code == 200  # assets need no login


def test_login_sets_a_signed_http_only_lax_cookie(client: TestClient, session: Session) -> None:
    make_user(session)
    r = _login_attempt(client, "ADA@example.org ", PASSWORD)  # e-mail case and spaces do not matter
    assert r.status_code == 303 and r.headers["location"] == "/admin"
    cookie = _set_cookie(r)
    assert f"{SESSION_COOKIE}=" in cookie
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/admin" in cookie
    assert f"Max-Age={SESSION_TTL_S}" in cookie
    assert "Secure" not in cookie  # plain http, public URL http
    page = client.get("/admin")
    assert page.status_code == 200 and "ada@example.org" in page.text
    for name, value in {
        "Content-Security-Policy": "script-src 'self'",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-store",
    }.items():
        assert value in page.headers[name]


def test_cookie_is_secure_over_https_or_with_an_https_public_url(app: FastAPI, session: Session) -> None:
    make_user(session)
    with TestClient(app, base_url="https://testserver") as https:
        assert "Secure" in _set_cookie(https.get("/admin/login"))  # the login form's nonce cookie
        assert "Secure" in _set_cookie(_login_attempt(https, "ada@example.org", PASSWORD))
        assert https.get("/admin").status_code == 200
    app.state.settings = app.state.settings.model_copy(update={"public_base_url": "https://study.example.org"})
    with TestClient(app) as behind_proxy:  # TLS ends at a proxy; the public address says https
        assert "Secure" in _set_cookie(behind_proxy.get("/admin/login"))
        # The browser keeps a Secure cookie off plain http, so the login form cannot be used over it.
        assert _login_attempt(behind_proxy, "ada@example.org", PASSWORD).status_code == 403


def test_wrong_password_non_admin_and_unknown_user_are_refused(client: TestClient, session: Session) -> None:
    make_user(session)
    make_user(session, "bob@example.org", admin=False)
    for email, password in [("ada@example.org", "wrong password"), ("bob@example.org", PASSWORD), ("x@y.z", "pw")]:
        r = _login_attempt(client, email, password)
        assert r.status_code == 401
        assert f"{SESSION_COOKIE}=" not in _set_cookie(r)
        assert "Wrong e-mail or password" in r.text
    assert client.get("/admin", follow_redirects=False).status_code == 303


def test_login_is_throttled_after_five_failures_per_address_and_email(client: TestClient, session: Session) -> None:
    make_user(session)
    for _ in range(5):
        assert _login_attempt(client, "ada@example.org", "wrong password").status_code == 401
    r = _login_attempt(client, "ada@example.org", PASSWORD)  # even the right password waits now
    assert r.status_code == 429
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert f"{SESSION_COOKIE}=" not in _set_cookie(r)
    assert _login_attempt(client, "other@example.org", "wrong password").status_code == 401  # another key


def test_throttle_window_slides() -> None:
    now = [0.0]
    throttle = LoginThrottle(max_failures=2, window_s=60, clock=lambda: now[0])
    key = ("1.2.3.4", "a@b.c")
    throttle.failed(key)
    now[0] = 30
    throttle.failed(key)
    assert throttle.retry_after(key) == 30  # the first failure leaves the window at t = 60
    now[0] = 60.5
    assert throttle.retry_after(key) is None
    throttle.failed(key)
    assert throttle.retry_after(key) is not None
    throttle.succeeded(key)
    assert throttle.retry_after(key) is None


def test_login_form_needs_its_csrf_token_and_cookie(client: TestClient, session: Session) -> None:
    make_user(session)
    token = csrf_of(client.get("/admin/login").text)
    r = client.post("/admin/login", data={"email": "ada@example.org", "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 403
    client.cookies.clear()  # a forged cross-site form has the token of another browser, not its cookie
    r = client.post(
        "/admin/login",
        data={"email": "ada@example.org", "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 403


def test_every_post_checks_the_csrf_token(
    client: TestClient, session: Session, storage: BlobStore, settings: Settings
) -> None:
    make_user(session)
    study = make_open_study(session, storage)
    token = log_in(client)
    other = Signer(settings.secret_key.get_secret_value()).csrf_token("another-session")
    for bad in ({}, {"csrf_token": ""}, {"csrf_token": "forged"}, {"csrf_token": other}):
        r = client.post(f"/admin/studies/{study.id}/close", data=bad, follow_redirects=False)
        assert r.status_code == 403, bad
        assert "security token" in r.text
    session.expire_all()
    assert session.get(Study, study.id).status == "open"
    r = client.post(f"/admin/studies/{study.id}/close", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    session.expire_all()
    assert session.get(Study, study.id).status == "closed"
    # The header works for scripts; the upload takes the token in its URL (checked before the body is read).
    r = client.post(f"/admin/studies/{study.id}/open", headers={"X-CSRF-Token": token}, follow_redirects=False)
    assert r.status_code == 303
    r = client.post("/admin/datasets", files={"file": ("d.zip", b"PK")}, follow_redirects=False)
    assert r.status_code == 403


def test_tampered_expired_and_stale_sessions_are_refused(
    client: TestClient, session: Session, settings: Settings
) -> None:
    user = make_user(session)
    log_in(client)
    value = client.cookies[SESSION_COOKIE]
    version, payload, signature = value.split(".")
    for forged in (f"{version}.{payload}x.{signature}", f"{version}.{payload}.{signature[:-2]}AA", "v1.e30.abc", ""):
        client.cookies.set(SESSION_COOKIE, forged, path="/admin")
        assert client.get("/admin", follow_redirects=False).status_code == 303
    signer = Signer(settings.secret_key.get_secret_value())
    old, _ = signer.new_session(user.id, user.password_hash, now=1_000_000)
    client.cookies.set(SESSION_COOKIE, old, path="/admin")
    assert client.get("/admin", follow_redirects=False).status_code == 303  # expired long ago
    fresh, _ = signer.new_session(user.id, user.password_hash)
    client.cookies.set(SESSION_COOKIE, fresh, path="/admin")
    assert client.get("/admin", follow_redirects=False).status_code == 200
    user.password_hash = hash_password("a new password")  # a password change ends the sessions
    session.commit()
    assert client.get("/admin", follow_redirects=False).status_code == 303


def test_logout_ends_the_session_and_next_stays_on_the_site(client: TestClient, session: Session) -> None:
    make_user(session)
    token = log_in(client)
    r = client.post("/admin/logout", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/admin/login"
    assert f'{SESSION_COOKIE}=""' in _set_cookie(r) or "Max-Age=0" in _set_cookie(r)
    assert client.get("/admin", follow_redirects=False).status_code == 303
    page = client.get("/admin/login?next=//evil.example/x")
    assert 'name="next" value="/admin"' in page.text
    page = client.get("/admin/login?next=/admin/studies/3")
    assert 'name="next" value="/admin/studies/3"' in page.text


def test_only_pages_get_the_page_policy(admin: TestClient, seeded) -> None:
    s = seeded()
    page = admin.get("/admin")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    progress = admin.get("/admin/jobs/progress.json?ids=1")
    mask = admin.get(f"/admin/annotations/{s.annotations[0].id}/mask.png")
    for r in (progress, mask):
        assert r.status_code == 200
        assert r.headers["content-security-policy"].startswith("default-src 'none'")
        assert r.headers["x-content-type-options"] == "nosniff"


def test_every_admin_route_needs_the_login(client: TestClient) -> None:
    """Every route of every dashboard module: apart from the login form, nothing answers without a session."""
    from fastapi.routing import APIRoute

    from backend.admin import MODULES

    routes = [r for m in MODULES for r in m.router.routes if isinstance(r, APIRoute)]
    assert len(routes) > 25
    for route in routes:
        path = "/admin" + route.path.replace("{file}", "responses.csv").replace("{key}", "detection")
        path = path.replace("{sha256}", "0" * 64)
        for name in ("study_id", "dataset_id", "stimulus_set_id", "job_id", "participant_id", "image_id",
                     "stimulus_id", "annotation_id"):  # fmt: skip
            path = path.replace("{" + name + "}", "1")
        assert "{" not in path, path
        for method in route.methods:
            r = client.request(method, path, follow_redirects=False)
            if path == "/admin/login":
                assert r.status_code in (200, 403), (method, path)
            elif method == "GET":
                assert r.status_code == 303 and r.headers["location"].startswith("/admin/login"), (method, path)
            else:
                assert r.status_code == 401, (method, path, r.status_code)
