"""The API docs page (`/api/v1/docs`, `backend.web.apidocs`) works offline: every file it loads comes from the
server, its policy allows nothing else, and Swagger UI renders the operations in Chromium."""

from __future__ import annotations

from typing import Any

import pytest

from backend.security import DOCS_POLICY
from tests.browser.driver import PageWatch

pytestmark = pytest.mark.browser


def test_api_docs_render_with_no_network_beyond_the_server(server: Any, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    blocked: list[str] = []
    served: list[str] = []

    def only_the_server(route: Any) -> None:
        url = route.request.url
        if url.startswith(server.url + "/"):
            served.append(url)
            route.continue_()
        else:  # what a machine without internet would do to a CDN request
            blocked.append(url)
            route.abort("internetdisconnected")

    context.route("**/*", only_the_server)
    page = context.new_page()
    watch = PageWatch().attach(page)
    response = page.goto(f"{server.url}/api/v1/docs")
    assert response is not None and response.status == 200
    assert response.headers["content-security-policy"] == DOCS_POLICY
    try:
        page.wait_for_selector(".opblock", timeout=15_000)
    except Exception as exc:  # say what the page did instead of rendering (Swagger UI shows schema errors inline)
        text = page.locator("#swagger-ui").inner_text()[:1000]
        raise AssertionError(f"no operations rendered: {watch.errors} {blocked} {text!r}") from exc
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert len(paths) > 10 and any(p.replace("\u200b", "") == "/api/v1/health" for p in paths), paths[:5]
    assert blocked == [], f"the docs page reached beyond the server: {blocked}"
    assert any("/api/v1/docs/assets/swagger-ui-bundle.js" in u for u in served) and any(
        u.endswith("/openapi.json") for u in served
    )
    assert watch.errors == [], watch.errors
    context.close()
