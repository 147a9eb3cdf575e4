"""The research API as a whole: every route needs a token, and the OpenAPI schema at /openapi.json documents
every operation's input and output (downloads by their media types)."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from backend.api import API_PREFIX, research
from backend.auth import find_token, revoke_token

ROUTES = [
    (method, route.path)
    for router in research.ROUTERS
    for route in router.routes
    if isinstance(route, APIRoute)
    for method in route.methods
]
ACTIONS_WITHOUT_INPUT = ("/open", "/close", "/cancel")
DOWNLOADS = {"/file", "/salience", "/mask", "/checkpoint", "/export/{file}"}


def _concrete(path: str) -> str:
    """The route's path with its parameters filled in ({study_id:int} -> 1, {file} -> responses.csv)."""
    return API_PREFIX + re.sub(r"{(\w+)(:\w+)?}", lambda m: "responses.csv" if m[1] == "file" else "1", path)


def test_the_research_router_covers_the_issue() -> None:
    paths = {path for _, path in ROUTES}
    assert len(ROUTES) >= 25
    for expected in ("/datasets", "/models/{model_id}/checkpoint", "/stimulus-sets", "/jobs/{job_id}/cancel"):
        assert expected in paths
    assert "/studies/{study_id:int}/export/{file}" in paths


@pytest.mark.parametrize(("method", "path"), sorted(ROUTES), ids=[f"{m} {p}" for m, p in sorted(ROUTES)])
def test_every_research_route_needs_a_token(client: TestClient, session: Session, method: str, path: str) -> None:
    r = client.request(method, _concrete(path))
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", r.text
    assert "API token" in r.json()["detail"]
    r = client.request(method, _concrete(path), headers={"Authorization": "Bearer sipat_not-a-real-token"})
    assert r.status_code == 401 and "invalid_token" in r.headers["www-authenticate"]


def test_a_revoked_token_is_refused(api: TestClient, session: Session) -> None:
    assert api.get("/api/v1/datasets").status_code == 200
    token = api.headers["Authorization"].removeprefix("Bearer ")
    revoke_token(session, find_token(session, token))
    session.commit()
    assert api.get("/api/v1/datasets").status_code == 401


def test_openapi_documents_every_research_operation(client: TestClient) -> None:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert client.get(f"{API_PREFIX}/docs").status_code == 200
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    for method, path in ROUTES:
        plain = API_PREFIX + re.sub(r"{(\w+):\w+}", r"{\1}", path)
        assert (method, plain) in documented, (method, plain)
        op = spec["paths"][plain][method.lower()]
        assert "401" in op["responses"], f"{method} {plain} does not document 401"
        success = {code: resp for code, resp in op["responses"].items() if code.startswith("2")}
        assert success, f"{method} {plain} declares no 2xx response"
        for resp in success.values():
            content = resp.get("content", {})
            assert content and all(c.get("schema") for c in content.values()), f"{method} {plain}"
            if any(plain.endswith(suffix) for suffix in DOWNLOADS):
                assert "application/json" not in content or "text/csv" in content, f"{method} {plain}"
                assert set(content) - {"application/json"}, f"{method} {plain} documents no media type"
        if method in ("POST", "PATCH") and not plain.endswith(ACTIONS_WITHOUT_INPUT):
            body = op.get("requestBody", {}).get("content", {})
            assert body and all(c.get("schema") for c in body.values()), f"{method} {plain} has no body schema"
    upload = spec["paths"][f"{API_PREFIX}/datasets"]["post"]["requestBody"]["content"]
    assert set(upload) == {"multipart/form-data"}
