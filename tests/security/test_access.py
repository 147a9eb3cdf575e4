"""Access: who can reach what, and what each answer gives away.

* every route of the app (walked from the router, so a new one is covered the day it is added) refuses a
  caller without credentials, except the participant protocol, its pages and static files, the health check
  and the API's docs;
* a participant reaches only their own session, and nothing a participant can see (the JSON of the protocol,
  media headers, the study page) tells a stimulus's eps;
* API tokens are stored as sha256 only and a revoked token is refused (the per-route 401s and the revocation
  through the API are in `tests/backend/api/test_research_api.py`);
* the dashboard: login throttled (429 + Retry-After), every POST form carries a CSRF token and a POST without
  one changes nothing, cookies HttpOnly + SameSite and Secure behind HTTPS (directly, or through a trusted
  proxy's X-Forwarded-Proto with uvicorn's proxy-headers middleware, as the Docker image runs it);
* security headers on every response (`backend.security`), and no path traversal through media or static URLs
  (sent as raw ASGI paths: an HTTP client would remove the dot segments before they reach the app).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from backend.admin.security import MAX_FAILURES, SESSION_COOKIE
from backend.auth import create_token, find_token, revoke_token, token_hash
from backend.models import ApiToken, Participant, Stimulus, Study, Trial
from backend.ratelimits import RateLimits
from backend.security import PAGE_POLICY, RESOURCE_POLICY
from backend.storage import BlobStore
from tests.backend.factories import make_dataset, make_open_study, make_stimulus_set, make_study, make_user, mask_png
from tests.backend.research_factories import finish_session
from tests.security.securitykit import ADMIN_EMAIL, ADMIN_PASSWORD, admin_login, csrf_from

#: (method, path) of routes anyone may call: the participant protocol (its token is the credential), the
#: participant pages and their files, the health check, the schema and the docs, the login form.
PUBLIC = {
    ("GET", "/openapi.json"),
    ("GET", "/api/v1/docs"),
    ("GET", "/api/v1/docs/assets/{name}"),
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/health/live"),
    ("GET", "/api/v1/health/ready"),
    ("GET", "/api/v1/studies/{slug}"),
    ("POST", "/api/v1/studies/{slug}/sessions"),
    ("GET", "/api/v1/sessions/{token}/next"),
    ("POST", "/api/v1/sessions/{token}/trials/{trial_id}/response"),
    ("POST", "/api/v1/sessions/{token}/trials/{trial_id}/annotation"),
    ("POST", "/api/v1/sessions/{token}/questionnaire"),
    ("GET", "/api/v1/media/{media_key}"),
    ("GET", "/s/{slug}"),
    ("GET", "/s/{slug}/example/{token}/{which}"),
    ("GET", "/s"),
    ("GET", "/s/{rest:path}"),
    ("GET", "/static/{path:path}"),
    ("GET", "/admin/login"),
    ("POST", "/admin/login"),
}


def all_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, full path) of every route, through included routers (FastAPI keeps them nested)."""
    from fastapi.routing import _IncludedRouter  # FastAPI's lazily included routers; no public walker

    def walk(routes: list[Any], prefix: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for route in routes:
            if isinstance(route, _IncludedRouter):
                out += walk(route.original_router.routes, prefix + route.include_context.prefix)
            else:
                out += [(m, prefix + route.path) for m in sorted(getattr(route, "methods", None) or ()) if m != "HEAD"]
        return out

    return walk(app.router.routes, "")


def concrete(path: str) -> str:
    fill = {"file": "responses.csv", "path:path": "js/main.js", "which": "clean", "key": "detection"}
    return re.sub(r"{(\w+)(:\w+)?}", lambda m: fill.get(m[1] + (m[2] or ""), fill.get(m[1], "1")), path)


def test_the_walk_finds_every_part_of_the_app(app: FastAPI) -> None:
    routes = all_routes(app)
    assert set(routes) >= PUBLIC, sorted(PUBLIC - set(routes))
    assert any(p.startswith("/admin/") for _, p in routes) and any("/datasets" in p for _, p in routes)
    documented = {(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops}
    walked = {(m, re.sub(r"{(\w+):\w+}", r"{\1}", p)) for m, p in routes}
    assert documented <= walked  # the schema has nothing the walk misses


def test_every_non_public_route_needs_credentials(app: FastAPI, client: TestClient, session: Session) -> None:
    make_user(session)  # a user exists, so an accidental "first user" shortcut would show
    # The walk sends a forged token to each of the 30-odd research routes within a second, past the per-client
    # limit on unknown tokens (a 429 would hide what the route itself answers; the limit has tests of its own).
    limits = app.state.settings.model_copy(update={"rate_limit_token_failures_per_client": ""})
    app.state.rate_limits = RateLimits(limits)
    guarded = [(m, p) for m, p in all_routes(app) if (m, p) not in PUBLIC]
    assert len(guarded) >= 60
    for method, path in guarded:
        r = client.request(method, concrete(path), follow_redirects=False)
        if path.startswith("/admin") and method == "GET":
            assert r.status_code == 303 and r.headers["location"].startswith("/admin/login?next="), (method, path)
        else:
            assert r.status_code in (401, 403), (method, path, r.status_code, r.text[:200])
        # With someone else's forged cookie and a wrong bearer token: still refused.
        r = client.request(
            method,
            concrete(path),
            headers={"Authorization": "Bearer sipat_forged", "Cookie": f"{SESSION_COOKIE}=v1.e30.forged"},
            follow_redirects=False,
        )
        assert r.status_code in (303, 401, 403), (method, path, r.status_code)


def test_a_participant_reaches_only_their_own_session(client: TestClient, session: Session, storage: BlobStore) -> None:
    make_open_study(session, storage)
    make_study(session, make_stimulus_set(session, storage, make_dataset(session, storage, name="b")), slug="other")
    session.commit()
    alice = client.post("/api/v1/studies/pilot/sessions", json={"consent": True}).json()["token"]
    bob = client.post("/api/v1/studies/pilot/sessions", json={"consent": True}).json()["token"]
    bob_trial = client.get(f"/api/v1/sessions/{bob}/next").json()
    body = {"judgment": "clean", "confidence": 2, "rt_ms": 500}
    r = client.post(f"/api/v1/sessions/{alice}/trials/{bob_trial['trial_id']}/response", json=body)
    assert r.status_code == 404 and str(bob_trial["trial_id"]) in r.json()["detail"]
    # The example images of the instructions: only through the token's own study.
    assert client.get(f"/s/pilot/example/{alice}/clean").status_code == 200
    assert client.get(f"/s/other/example/{alice}/clean").status_code == 404
    assert client.get("/s/pilot/example/not-a-token/clean").status_code == 404
    # A token is not an id: nothing answers to a participant id or index.
    participant_id = session.scalar(select(Participant.id).where(Participant.token_hash == token_hash(bob)))
    assert client.get(f"/api/v1/sessions/{participant_id}/next").status_code == 404
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Trial).join(Trial.response)) == 0


def _eps_spellings(eps: float) -> set[str]:
    """How an eps might show up in text: 0.03137..., 0.03137, 8/255, 3.14e-02 (not '0', and not 3 decimals,
    which timestamps such as '10:50:00.008123' contain by chance)."""
    out = {repr(eps), str(eps), f"{eps:.4g}", f"{eps:.2e}", f"{eps * 255:g}/255"}
    return {s for s in out if s.strip("0.") and len(s) >= 4}


def test_nothing_a_participant_sees_tells_the_eps(client: TestClient, session: Session, storage: BlobStore) -> None:
    make_open_study(session, storage, n_main=6, n_catch=2)
    seen: list[str] = []

    def look(r: Any) -> Any:
        assert r.status_code < 400, r.text
        seen.append(" ".join(f"{k}: {v}" for k, v in r.headers.items()))
        if not r.headers.get("content-type", "").startswith("image/"):
            seen.append(r.text)
        return r

    look(client.get("/s/pilot"))
    look(client.get("/api/v1/studies/pilot"))
    token = look(client.post("/api/v1/studies/pilot/sessions", json={"consent": True})).json()["token"]
    for which in ("clean", "perturbed"):
        look(client.get(f"/s/pilot/example/{token}/{which}"))
    while not (trial := look(client.get(f"/api/v1/sessions/{token}/next")).json())["done"]:
        assert not {"eps", "linf", "l2", "role", "stimulus_id", "sha256"} & set(trial), trial
        look(client.get(trial["image_url"]))
        base = f"/api/v1/sessions/{token}/trials/{trial['trial_id']}"
        if trial["question"] == "annotate":
            mask = base64.b64encode(mask_png(trial["mask_width"], trial["mask_height"])).decode()
            look(client.post(f"{base}/annotation", json={"mask_png": mask, "duration_ms": 900}))
        else:
            look(client.post(f"{base}/response", json={"judgment": "clean", "confidence": 1, "rt_ms": 300}))
    session.expire_all()
    stimuli = session.scalars(select(Stimulus)).all()
    everything = "\n".join(seen)
    for stimulus in stimuli:
        assert stimulus.sha256 not in everything
        for spelling in _eps_spellings(stimulus.eps):
            assert spelling not in everything, f"eps {stimulus.eps} appears as {spelling!r}"
    assert "eps" not in everything.lower().replace("steps", "")


def test_api_tokens_are_stored_hashed_and_revocable(client: TestClient, session: Session) -> None:
    user = make_user(session)
    plaintext = create_token(session, user, name="laptop")
    session.commit()
    secret = plaintext.removeprefix("sipat_")
    dump = " ".join(str(v) for row in session.execute(text("SELECT * FROM api_tokens")).all() for v in row)
    assert secret not in dump and plaintext not in dump
    row = session.scalar(select(ApiToken))
    assert row.token_hash == token_hash(plaintext) == hashlib.sha256(plaintext.encode()).hexdigest()
    headers = {"Authorization": f"Bearer {plaintext}"}
    assert client.get("/api/v1/users/me", headers=headers).status_code == 200
    # The stored hash is not a credential.
    assert client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {row.token_hash}"}).status_code == 401
    revoke_token(session, find_token(session, str(row.id)))
    session.commit()
    r = client.get("/api/v1/users/me", headers=headers)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]


def test_session_tokens_are_stored_hashed_and_a_resume_revokes_the_old_one(
    client: TestClient, session: Session, storage: BlobStore
) -> None:
    make_open_study(session, storage)
    token = client.post("/api/v1/studies/pilot/sessions", json={"consent": True, "external_id": "p-1"}).json()["token"]
    dump = " ".join(str(v) for row in session.execute(text("SELECT * FROM participants")).all() for v in row)
    assert token not in dump and token_hash(token) in dump
    stored = session.scalar(select(Participant.token_hash))
    assert client.get(f"/api/v1/sessions/{stored}/next").status_code == 404  # the stored hash is not a credential
    assert client.get(f"/api/v1/sessions/{token}/next").status_code == 200
    again = client.post("/api/v1/studies/pilot/sessions", json={"consent": True, "external_id": "p-1"})
    assert again.status_code == 200 and again.json()["token"] != token
    assert client.get(f"/api/v1/sessions/{token}/next").status_code == 404
    assert client.get(f"/api/v1/sessions/{again.json()['token']}/next").status_code == 200


def test_login_is_throttled(client: TestClient, session: Session) -> None:
    make_user(session, ADMIN_EMAIL, password=ADMIN_PASSWORD, admin=True)
    for _ in range(MAX_FAILURES):
        assert admin_login(client, password="wrong password").status_code == 401
    r = admin_login(client, password="wrong password")
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    r = admin_login(client)  # even the right password waits for the window to pass
    assert r.status_code == 429 and SESSION_COOKIE not in r.cookies
    # Another e-mail from the same address is throttled on its own key.
    make_user(session, "other@example.org", password=ADMIN_PASSWORD, admin=True)
    assert admin_login(client, email="other@example.org").status_code == 303


def test_login_needs_its_form_token_and_an_admin(client: TestClient, session: Session) -> None:
    make_user(session, ADMIN_EMAIL, password=ADMIN_PASSWORD, admin=True)
    make_user(session, "researcher@example.org", password=ADMIN_PASSWORD, admin=False)
    client.get("/admin/login")
    form = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    assert client.post("/admin/login", data=form, follow_redirects=False).status_code == 403
    r = client.post("/admin/login", data={**form, "csrf_token": "forged"}, follow_redirects=False)
    assert r.status_code == 403 and SESSION_COOKIE not in r.cookies
    assert admin_login(client, email="researcher@example.org").status_code == 401  # not an administrator


def _post_forms(html: str) -> list[str]:
    return re.findall(r"<form[^>]*method=\"post\"[^>]*>.*?</form>", html, flags=re.S | re.I)


def test_admin_forms_carry_csrf_tokens_and_posts_need_them(
    admin_client: TestClient, session: Session, storage: BlobStore
) -> None:
    study = make_open_study(session, storage)
    token = admin_client.post("/api/v1/studies/pilot/sessions", json={"consent": True}).json()["token"]
    participant_id = session.scalar(select(Participant.id).where(Participant.token_hash == token_hash(token)))
    pages = [
        "/admin",
        "/admin/datasets",
        "/admin/stimulus-sets",
        "/admin/studies",
        f"/admin/studies/{study.id}",
        "/admin/training",
        f"/admin/studies/{study.id}/participants/{participant_id}/withdraw",
    ]
    forms = 0
    for page in pages:
        r = admin_client.get(page)
        assert r.status_code == 200, (page, r.text[:300])
        for form in _post_forms(r.text):
            forms += 1
            assert 'name="csrf_token"' in form or "csrf_token=" in form, (page, form[:200])
    assert forms >= 6
    # A POST without the token (or with another session's) is refused and changes nothing.
    for data in ({}, {"csrf_token": "forged"}):
        r = admin_client.post(f"/admin/studies/{study.id}/close", data=data, follow_redirects=False)
        assert r.status_code == 403, r.text[:300]
    session.expire_all()
    assert session.get(Study, study.id).status == "open"
    good = csrf_from(admin_client.get(f"/admin/studies/{study.id}").text)
    r = admin_client.post(f"/admin/studies/{study.id}/close", data={"csrf_token": good}, follow_redirects=False)
    assert r.status_code == 303
    session.expire_all()
    assert session.get(Study, study.id).status == "closed"


def _cookie_flags(response: Any) -> dict[str, str]:
    """Set-Cookie headers of a response by cookie name, lower-cased."""
    return {h.split("=", 1)[0]: h.lower() for h in response.headers.get_list("set-cookie")}


def test_cookies_are_httponly_samesite_and_secure_over_https(app: FastAPI, session: Session) -> None:
    make_user(session, ADMIN_EMAIL, password=ADMIN_PASSWORD, admin=True)
    with TestClient(app) as plain:
        r = admin_login(plain)
        cookie = _cookie_flags(r)[SESSION_COOKIE]
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/admin" in cookie
        assert "secure" not in cookie  # plain http in development: a Secure cookie would never come back
    with TestClient(app, base_url="https://testserver") as tls:
        login_page = tls.get("/admin/login")
        assert all("secure" in c and "httponly" in c for c in _cookie_flags(login_page).values())
        r = admin_login(tls)
        assert r.status_code == 303 and "secure" in _cookie_flags(r)[SESSION_COOKIE]
        assert r.headers["strict-transport-security"].startswith("max-age=")


def test_secure_cookies_behind_a_trusted_proxy_only(app: FastAPI, session: Session) -> None:
    """uvicorn --proxy-headers (the Docker image's command) trusts X-Forwarded-Proto from
    --forwarded-allow-ips (127.0.0.1 by default) only; the cookies follow the resulting scheme."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    make_user(session, ADMIN_EMAIL, password=ADMIN_PASSWORD, admin=True)
    behind = ProxyHeadersMiddleware(app, trusted_hosts="127.0.0.1")

    def login_through(peer: str) -> Any:
        # The proxy speaks plain http to the app, so the cookie jar would hold back Secure cookies: carry
        # the login form's nonce cookie by hand.
        with TestClient(behind, client=(peer, 40000), headers={"X-Forwarded-Proto": "https"}) as c:
            page = c.get("/admin/login")
            nonce = page.headers["set-cookie"].split(";")[0]
            form = {"csrf_token": csrf_from(page.text), "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
            c.cookies.clear()
            return c.post("/admin/login", data=form, headers={"Cookie": nonce}, follow_redirects=False)

    r = login_through("127.0.0.1")
    assert r.status_code == 303 and "secure" in _cookie_flags(r)[SESSION_COOKIE]
    assert "strict-transport-security" in r.headers
    r = login_through("203.0.113.7")  # a client that claims https itself is not believed
    assert r.status_code == 303 and "secure" not in _cookie_flags(r)[SESSION_COOKIE]
    assert "strict-transport-security" not in r.headers


def _headers_ok(r: Any, what: str) -> None:
    policies = r.headers.get_list("content-security-policy")
    assert len(policies) == 1, (what, policies)
    policy = policies[0]
    assert "frame-ancestors 'none'" in policy and "unsafe-eval" not in policy, what
    assert r.headers["x-content-type-options"] == "nosniff", what
    assert r.headers["referrer-policy"] in ("no-referrer", "same-origin"), what
    assert r.headers["x-frame-options"] == "DENY", what
    if r.headers.get("content-type", "").startswith("text/html") and "/docs" not in what:
        assert "script-src 'self';" in policy and "unsafe-inline" not in policy, what


def test_security_headers_on_every_response(admin_client: TestClient, session: Session, storage: BlobStore) -> None:
    study = make_open_study(session, storage)
    token = admin_client.post("/api/v1/studies/pilot/sessions", json={"consent": True}).json()["token"]
    trial = admin_client.get(f"/api/v1/sessions/{token}/next").json()
    requests = [
        ("GET", "/s/pilot"),
        ("GET", "/s/nope"),
        ("GET", "/api/v1/studies/pilot"),
        ("GET", f"/api/v1/sessions/{token}/next"),
        ("GET", trial["image_url"]),
        ("GET", "/api/v1/media/" + "A" * 24),
        ("GET", f"/s/pilot/example/{token}/clean"),
        ("GET", "/static/js/main.js"),
        ("GET", "/static/nope.js"),
        ("GET", "/api/v1/health"),
        ("GET", "/openapi.json"),
        ("GET", "/api/v1/docs"),
        ("GET", "/api/v1/datasets"),  # 401
        ("POST", "/api/v1/studies/pilot/sessions"),  # 422
        ("GET", "/admin"),
        ("GET", f"/admin/studies/{study.id}"),
        ("GET", "/admin/nope"),
        ("POST", f"/admin/studies/{study.id}/close"),  # 403 (no CSRF token)
        ("GET", "/no/such/route"),
    ]
    for method, path in requests:
        r = admin_client.request(method, path, follow_redirects=False)
        _headers_ok(r, f"{method} {path} -> {r.status_code}")
    assert admin_client.get("/s/pilot").headers["content-security-policy"] == PAGE_POLICY
    assert admin_client.get(trial["image_url"]).headers["content-security-policy"] == RESOURCE_POLICY
    assert admin_client.get("/api/v1/health").headers["content-security-policy"] == RESOURCE_POLICY
    finish_session(admin_client, token)


def _raw_get(app: FastAPI, raw_path: bytes) -> tuple[int, bytes]:
    """GET `raw_path` as the server received it (no client-side normalisation of `..` or `%2f`)."""
    from urllib.parse import unquote_to_bytes

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote_to_bytes(raw_path.split(b"?")[0]).decode("latin-1"),
        "raw_path": raw_path,
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "state": {},
    }
    status: list[int] = []
    body: list[bytes] = []

    sent_request = False

    async def main() -> None:
        done = asyncio.Event()

        async def receive() -> dict[str, Any]:
            nonlocal sent_request
            if not sent_request:
                sent_request = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await done.wait()  # the client stays until the whole response is sent
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))
                if not message.get("more_body"):
                    done.set()

        await app(scope, receive, send)

    # A thread of its own: another test in this process (Playwright's sync API) may have left a loop running.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, main()).result()
    return status[0], b"".join(body)


@pytest.mark.parametrize(
    "raw",
    [
        b"/api/v1/media/..%2f..%2fsecret_key",
        b"/api/v1/media/../../../etc/passwd",
        b"/api/v1/media/%2e%2e%2f%2e%2e%2fblobs",
        b"/static/../../backend/settings.py",
        b"/static/..%2f..%2fbackend%2fsettings.py",
        b"/static/%2e%2e/%2e%2e/backend/settings.py",
        b"/static/js/../../../backend/main.py",
        b"/static//etc/passwd",
        b"/static/%2fetc%2fpasswd",
        b"/static/..%5c..%5cbackend%5csettings.py",
        b"/s/pilot/example/..%2f..%2f/clean",
    ],
)
def test_no_path_traversal(app: FastAPI, session: Session, storage: BlobStore, settings: Any, raw: bytes) -> None:
    make_open_study(session, storage)
    status, body = _raw_get(app, raw)
    assert status in (404, 422), (raw, status, body[:200])
    for leak in (b"root:", b"SIPAT_", b"import ", b"BaseSettings"):
        assert leak not in body, (raw, leak)
    assert settings.secret_key.get_secret_value().encode() not in body
    assert _raw_get(app, b"/static/js/main.js")[0] == 200  # the same route serves its own files
