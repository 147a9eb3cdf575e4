"""`backend.web` without a browser: the page, its headers, the static files, the example pair."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db import make_engine, make_session_factory
from backend.main import create_app
from backend.migrate import upgrade
from backend.models import Study
from backend.security import PAGE_POLICY as CONTENT_SECURITY_POLICY
from backend.settings import Settings
from backend.storage import LocalBlobStore
from tests.browser import seed


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[TestClient, Session, LocalBlobStore]]:
    url = f"sqlite:///{tmp_path / 'web.db'}"
    upgrade(url)
    settings = Settings(database_url=url, data_dir=tmp_path / "data", secret_key="k" * 40)
    engine = make_engine(url)
    with TestClient(create_app(settings)) as client, make_session_factory(engine)() as session:
        yield client, session, LocalBlobStore(settings.data_dir / "blobs", durable=False)
    engine.dispose()


def page_config(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="study-config">(.*?)</script>', html, re.S)
    assert match, "the page has no JSON config block"
    return json.loads(match.group(1))


def test_study_page_has_its_texts_as_data_and_a_strict_policy(env) -> None:
    client, session, storage = env
    seed.make_study(session, storage, slug="web1", consent_text="Agree </script><script>alert(1)</script> ok?")
    r = client.get("/s/web1?PROLIFIC_PID=abc")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert r.headers["referrer-policy"] == "no-referrer" and r.headers["cache-control"] == "no-store"
    config = page_config(r.text)
    assert config["consent_text"] == "Agree </script><script>alert(1)</script> ok?"  # escaped in the page, intact here
    assert config["api"] == "/api/v1" and config["status"] == "open"
    scripts = re.findall(r"<script\b[^>]*>", r.text)
    assert all('type="application/json"' in s or "src=" in s for s in scripts), "no inline script may run"
    assert " style=" not in r.text


def test_unknown_and_draft_studies_get_an_explanation(env) -> None:
    client, session, storage = env
    seed.make_study(session, storage, slug="draft1")
    study = session.scalars(select(Study).where(Study.slug == "draft1")).one()
    study.status = "draft"
    session.commit()
    for slug in ("nope", "draft1"):
        r = client.get(f"/s/{slug}")
        assert r.status_code == 404 and "This study is not available" in r.text
        assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


@pytest.mark.parametrize(
    "path", ["css/study.css", "js/main.js", "js/trials/annotate.js", "js/lifecycle.js", "js/painter.js"]
)
def test_static_files(env, path: str) -> None:
    client, _, _ = env
    r = client.get(f"/static/{path}")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-cache"
    expected = "text/css" if path.endswith(".css") else "text/javascript"
    assert r.headers["content-type"].startswith(expected)


@pytest.mark.parametrize("path", ["../__init__.py", "..%2F__init__.py", "%2e%2e/templates/study.html", "js", "nope.js"])
def test_static_files_stay_in_their_folder(env, path: str) -> None:
    client, _, _ = env
    assert client.get(f"/static/{path}").status_code == 404


def test_example_pair_is_one_image_clean_and_most_perturbed(env) -> None:
    client, session, storage = env
    seed.make_study(session, storage, slug="ex1", n_images=8)
    token = client.post("/api/v1/studies/ex1/sessions", json={"consent": True}).json()["token"]
    images = {}
    for which in ("clean", "perturbed"):
        r = client.get(f"/s/ex1/example/{token}/{which}")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert r.headers["cache-control"] == "private, no-store"
        images[which] = np.asarray(PILImage.open(io.BytesIO(r.content)).convert("RGB"), dtype=float)
    diff = abs(images["perturbed"] - images["clean"])
    assert diff.max() == pytest.approx(max(seed.EPS_LEVELS) * 255, abs=1)  # the same image, the largest eps
    assert client.get(f"/s/ex1/example/{token}/other").status_code == 422
    assert client.get(f"/s/other/example/{token}/clean").status_code == 404
    assert client.get("/s/ex1/example/not-a-token/clean").status_code == 404


def test_api_docs_page_loads_no_cdn_and_no_inline_script(env) -> None:
    client, _, _ = env
    r = client.get("/api/v1/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "https://" not in r.text and "http://" not in r.text, "a remote URL in the docs page"
    scripts = re.findall(r"<script\b[^>]*>", r.text)
    assert scripts and all("src=" in s for s in scripts), "no inline script may run"
    policy = r.headers["content-security-policy"]
    assert "https:" not in policy and "unsafe-inline" not in policy.split("style-src")[0]
    for src in re.findall(r'(?:src|href)="([^"]+)"', r.text):
        asset = client.get(src)
        assert asset.status_code == 200 and len(asset.content) > 0, src
    assert client.get("/api/v1/docs/assets/index.html").status_code == 404  # only the files the page uses
    assert client.get("/api/v1/docs/assets/..%2Fswagger-ui.js").status_code == 404
