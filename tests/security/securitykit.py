"""Helpers of the security tests (a module of its own: `conftest` names clash across test directories)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

ADMIN_EMAIL = "admin@example.org"
ADMIN_PASSWORD = "correct horse battery"
_CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    """The CSRF token of the first form of an HTML page."""
    match = _CSRF_RE.search(html)
    assert match, "the page has no form with a csrf_token field"
    return match[1]


def admin_login(client: TestClient, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD):
    """GET the login form (its nonce cookie and CSRF token), then POST it; returns the POST's response."""
    page = client.get("/admin/login")
    assert page.status_code == 200, page.text
    form = {"csrf_token": csrf_from(page.text), "email": email, "password": password, "next": "/admin"}
    return client.post("/admin/login", data=form, follow_redirects=False)
