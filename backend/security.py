"""Security headers on every response, set in one place (a pure ASGI middleware, so streamed bodies stay
streamed and nothing is buffered).

Policies, by what the response is:

* HTML pages (participant pages `/s/...`, the dashboard `/admin/...`, error pages): `PAGE_POLICY`, only this
  origin's scripts and styles, no inline code, images also from `blob:`/`data:` (the study page shows
  preloaded stimuli from object URLs), no framing. The page of an MTurk study sets `page_policy(...)` itself:
  the same policy, with the MTurk origin as form target (the external-submit form) and as frame ancestor (MTurk
  shows the page in an iframe); then `X-Frame-Options` is left out.
* Everything else (JSON, images, CSV, static files): `RESOURCE_POLICY`, which allows nothing to run if a
  response is ever opened as a document, and no framing.
* The interactive API docs (`/api/v1/docs`, `backend.web.apidocs`): Swagger UI served from this origin and
  started by a local script; `DOCS_POLICY` allows only this origin, plus `data:` images (Swagger UI's icons),
  and no form posts or framing.

Besides the CSP: `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer` (study links carry
recruitment ids), `X-Frame-Options: DENY` for browsers without CSP level 2, `Cross-Origin-Opener-Policy` and
`Cross-Origin-Resource-Policy: same-origin`, and `Strict-Transport-Security` when the request came over HTTPS
(uvicorn's `--proxy-headers` turns a trusted proxy's `X-Forwarded-Proto: https` into the request's scheme; it
trusts only `--forwarded-allow-ips`, 127.0.0.1 by default, so a client cannot fake it).

A header a route set itself is kept (setdefault), so a route may be stricter, e.g. the dashboard's
`Referrer-Policy: same-origin`, or the media route's `Cache-Control: private, no-store`.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def page_policy(*, form_action: Iterable[str] = (), frame_ancestors: Iterable[str] = ()) -> str:
    """The HTML pages' CSP; a page that must post a form to, or be framed by, other origins names them (an MTurk
    study's page: `backend.study.mturk`, set by `backend.web.pages`). The rest of the policy stays the same."""
    posts = " ".join(("'self'", *form_action))
    framers = " ".join(frame_ancestors) or "'none'"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
        f"object-src 'none'; base-uri 'none'; form-action {posts}; frame-ancestors {framers}"
    )


PAGE_POLICY = page_policy()
RESOURCE_POLICY = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
DOCS_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
#: Headers of every response (before the CSP, which depends on the response).
COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
HSTS = "max-age=31536000"


def content_security_policy(path: str, content_type: str, docs_paths: Iterable[str] = ()) -> str:
    """The CSP for a response to `path` with `content_type`: the page policy for HTML, the docs' own policy
    for the API docs page, the no-content policy for anything else."""
    if path in docs_paths:
        return DOCS_POLICY
    if content_type.split(";")[0].strip().lower() == "text/html":
        return PAGE_POLICY
    return RESOURCE_POLICY


def _allows_framing(policy: str) -> bool:
    """Whether a route's own CSP lets other origins frame the page; then `X-Frame-Options: DENY` (for browsers
    without CSP level 2) would contradict it, so it is left out."""
    for directive in policy.split(";"):
        name, _, sources = directive.strip().partition(" ")
        if name.lower() == "frame-ancestors":
            return sources.strip() != "'none'"
    return False


class SecurityHeadersMiddleware:
    """Adds `COMMON_HEADERS`, a Content-Security-Policy and (over HTTPS) HSTS to every HTTP response,
    without replacing a header the route already set."""

    def __init__(self, app: ASGIApp, *, docs_paths: Iterable[str] = ()) -> None:
        self.app = app
        self.docs_paths = frozenset(docs_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                framed = _allows_framing(headers.get("content-security-policy", ""))
                for name, value in COMMON_HEADERS.items():
                    if not (framed and name == "X-Frame-Options"):
                        headers.setdefault(name, value)
                policy = content_security_policy(path, headers.get("content-type", ""), self.docs_paths)
                headers.setdefault("Content-Security-Policy", policy)
                if https:
                    headers.setdefault("Strict-Transport-Security", HSTS)
            await send(message)

        await self.app(scope, receive, send_with_headers)
