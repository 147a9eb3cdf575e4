"""One Content-Security-Policy: the dashboard and the participant pages send the same string, defined once in
`backend.security` (`PAGE_POLICY`), and no other module of `backend` writes a policy of its own.

The dashboard used to set its own copy (without `blob:` images), so the two could drift apart unnoticed.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from backend.security import PAGE_POLICY
from backend.storage import BlobStore
from tests.backend.factories import make_open_study

BACKEND = Path(__file__).resolve().parents[2] / "backend"


def test_admin_and_participant_pages_send_the_one_page_policy(
    admin_client: TestClient, session: Session, storage: BlobStore
) -> None:
    study = make_open_study(session, storage)
    pages = {
        "/s/pilot": 200,
        "/s/nope": 404,
        "/admin": 200,
        "/admin/studies": 200,
        f"/admin/studies/{study.id}": 200,
        "/admin/studies/999999": 404,
    }
    policies: dict[str, str] = {}
    for path, code in pages.items():
        r = admin_client.get(path)
        assert r.status_code == code, (path, r.status_code, r.text[:200])
        assert r.headers["content-type"].startswith("text/html"), path
        policies[path] = r.headers["content-security-policy"]
    assert set(policies.values()) == {PAGE_POLICY}, policies


def test_the_login_page_sends_the_one_page_policy(client: TestClient) -> None:
    r = client.get("/admin/login")
    assert r.status_code == 200 and r.headers["content-security-policy"] == PAGE_POLICY


def test_no_module_but_backend_security_defines_a_policy() -> None:
    """Every policy starts with a `default-src` directive; only `backend/security.py` may spell one."""
    writers = sorted(
        str(path.relative_to(BACKEND.parent))
        for path in BACKEND.rglob("*.py")
        if "default-src" in path.read_text(encoding="utf-8")
    )
    assert writers == ["backend/security.py"]
