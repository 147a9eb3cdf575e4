"""A bound on every request body, counted as the bytes arrive (a pure ASGI middleware).

Why here and not in the routes: a route that reads `Content-Length` is bypassed by a chunked body (no length
declared), and a route that reads the body through FastAPI's parsing has buffered all of it before its own
check runs. A public route (no token needed) could be made to hold hundreds of MiB per request. This
middleware sits in front of every route:

* a declared `Content-Length` over the limit is answered 413 before a byte of the body is read;
* otherwise `receive` is wrapped and counts the bytes of each `http.request` message; the first message that
  passes the limit raises `BodyTooLargeError` (an HTTP 413) inside the route, nothing more is read, and
  whatever the route answers after that is replaced by the 413 (a route that caught the error and answered
  something else must not hide the refusal).

The limit depends on the route (`BodyLimits.limit_for`): small for JSON, larger for the annotation route
(a base64 mask), the upload limit for the dataset upload routes, which also stream and check on their own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Default bound of a request body: generous for every JSON body of the API and for the dashboard's forms.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


class BodyTooLargeError(HTTPException):
    """Raised from `receive` when the body passes its limit; an HTTP 413 wherever it ends up."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes; send a smaller body")
        self.limit = limit


@dataclass(frozen=True)
class BodyLimits:
    """The body limit of each request: `default`, or the limit of the first `(method, path regex)` that matches.

    `routes` holds `(method, compiled pattern, limit)`; a pattern is matched against the whole path.
    """

    default: int = DEFAULT_MAX_BODY_BYTES
    routes: tuple[tuple[str, re.Pattern[str], int], ...] = field(default_factory=tuple)

    def limit_for(self, method: str, path: str) -> int:
        for route_method, pattern, limit in self.routes:
            if route_method == method and pattern.fullmatch(path):
                return limit
        return self.default


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


def _too_large_response(limit: int) -> tuple[Message, Message]:
    body = json.dumps({"detail": BodyTooLargeError(limit).detail}).encode()
    start = {
        "type": "http.response.start",
        "status": 413,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    }
    return start, {"type": "http.response.body", "body": body, "more_body": False}


class BodyLimitMiddleware:
    """Answers 413 to any request whose body passes `limits.limit_for(method, path)` bytes (see the module)."""

    def __init__(self, app: ASGIApp, *, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.limit_for(scope["method"], scope["path"])
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            for message in _too_large_response(limit):
                await send(message)
            return

        received = 0
        exceeded = started = replaced = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise BodyTooLargeError(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLargeError(limit)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started, replaced
            if message["type"] == "http.response.start":
                started = True
                if exceeded and message["status"] != 413:  # the route caught the refusal and answered otherwise
                    replaced = True
                    for own in _too_large_response(limit):
                        await send(own)
                    return
            elif replaced:
                return  # the body of the route's answer that the 413 replaced
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLargeError:
            if started:
                raise
            for message in _too_large_response(limit):
                await send(message)
