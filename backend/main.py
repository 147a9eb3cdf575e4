"""The FastAPI application: `create_app()` wires settings, database, blob store and routers.

Run it with `uvicorn --factory backend.main:create_app` (settings from `SIPAT_*`); tests pass their own
`Settings`. Nothing is created at import time.
"""

from __future__ import annotations

import gc
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from anyio import CapacityLimiter
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, DisconnectionError, InterfaceError, OperationalError

from backend import logjson, logredact
from backend.admin import router as admin_router
from backend.api import API_PREFIX, api_router
from backend.blobstores import open_blob_store
from backend.bodylimit import BodyLimitMiddleware, BodyLimits
from backend.db import DB_THREADS, ENROL_THREADS, make_engine, make_session_factory
from backend.hashbudget import PasswordCheckBudget
from backend.ratelimits import RateLimits
from backend.schemas.common import ErrorOut
from backend.security import SecurityHeadersMiddleware
from backend.services.errors import ServiceError
from backend.services.masks import MAX_MASK_BYTES
from backend.services.media import MediaCache
from backend.services.participants import MAX_STROKES_BYTES
from backend.settings import Settings, get_settings
from backend.storage import StorageError
from backend.web import router as web_router
from backend.web.apidocs import DOCS_PATH

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    logredact.install()  # no participant token or recruitment id in the access log
    if settings.log_format == "json":
        logjson.use_json()  # uvicorn configured its loggers before it called this factory
    # No pre-ping: it is one more round trip on every request. After a database restart the first request on
    # a dead connection fails (503, Retry-After; clients retry) and SQLAlchemy discards the whole pool.
    engine = make_engine(settings.database_url, pool_pre_ping=False)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        _freeze_startup_objects()
        yield
        engine.dispose()

    app = FastAPI(
        title="SIP-AT Study Platform",
        version="0.1.0",
        description="Participant protocol and research API of the SIP-AT human study.",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url=None,  # backend.web.apidocs: the same page, Swagger UI served locally (no CDN)
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.db_limiter = CapacityLimiter(DB_THREADS)
    app.state.enrol_limiter = CapacityLimiter(ENROL_THREADS)
    app.state.storage = open_blob_store(settings)
    app.state.media_cache = MediaCache()
    app.state.rate_limits = RateLimits(settings)
    app.state.password_checks = PasswordCheckBudget.from_settings(settings)  # argon2, all clients together
    app.include_router(api_router, prefix=API_PREFIX)
    app.include_router(web_router)  # participant pages /s/{slug} and /static/
    app.include_router(admin_router)  # researcher dashboard /admin (login session, CSRF)
    app.add_exception_handler(ServiceError, _service_error)  # type: ignore[arg-type]
    app.add_exception_handler(StorageError, _storage_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    for exc_type in (OperationalError, InterfaceError, DisconnectionError):
        app.add_exception_handler(exc_type, _database_unavailable)
    app.add_exception_handler(DataError, _unstorable_value)
    app.add_exception_handler(OverflowError, _unstorable_value)
    app.add_middleware(BodyLimitMiddleware, limits=body_limits(settings))
    app.add_middleware(SecurityHeadersMiddleware, docs_paths=[DOCS_PATH])  # every response, one place
    _document_error_shapes(app)
    return app


#: Room for the multipart framing and the small fields around an uploaded file.
_FORM_OVERHEAD = 64 * 1024


def body_limits(settings: Settings) -> BodyLimits:
    """Each route's bound on its request body (`backend.bodylimit`): the dataset uploads may send
    `max_upload_bytes`, the annotation route a base64 mask and its strokes, every other route `max_body_bytes`."""
    upload = settings.max_upload_bytes + _FORM_OVERHEAD
    annotation = (MAX_MASK_BYTES * 4) // 3 + MAX_STROKES_BYTES + _FORM_OVERHEAD
    return BodyLimits(
        default=settings.max_body_bytes,
        routes=(
            ("POST", re.compile(re.escape(f"{API_PREFIX}/datasets")), upload),
            ("POST", re.compile("/admin/datasets"), upload),
            ("POST", re.compile(re.escape(API_PREFIX) + r"/sessions/[^/]+/trials/[^/]+/annotation"), annotation),
        ),
    )


_startup_frozen = False


def _freeze_startup_objects() -> None:
    """Once per process: collect, then move every object alive now to the collector's permanent generation.

    The ~160k objects of the imported libraries and the app live as long as the process; frozen, the full
    collections no longer walk them. Each full collection took 50-150 ms otherwise, a stall of every request of
    the process. Once only, so that a process that starts many apps (the tests) does not freeze their garbage.
    """
    global _startup_frozen
    if not _startup_frozen:
        gc.collect()
        gc.freeze()
        _startup_frozen = True


def _document_error_shapes(app: FastAPI) -> None:
    """Make /openapi.json say what the error answers really look like (found by Schemathesis):

    * a 422 is either FastAPI's list of field errors or our one-message `ErrorOut` (a service's
      InvalidInputError), whichever way a route documented it;
    * an operation with a body may answer 400 when the body cannot be parsed at all (not UTF-8, JSON nested
      deeper than the parser allows): FastAPI's own refusal, not declared by the routes.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        if "ErrorOut" not in components:
            components["ErrorOut"] = ErrorOut.model_json_schema()
        shapes = [{"$ref": "#/components/schemas/ErrorOut"}]
        if "HTTPValidationError" in components:
            shapes.append({"$ref": "#/components/schemas/HTTPValidationError"})
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.get("responses", {})
                if "422" in responses:
                    responses["422"]["content"] = {"application/json": {"schema": {"anyOf": shapes}}}
                if "requestBody" in operation:
                    responses.setdefault(
                        "400",
                        {
                            "description": "The body cannot be parsed (not UTF-8, or nested too deeply).",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
                        },
                    )
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


async def _service_error(_request: Request, exc: ServiceError) -> JSONResponse:
    return JSONResponse({"detail": exc.message}, status_code=exc.status_code, headers=exc.headers)


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 body without the echoed input (it may be megabytes of base64, or a NaN JSON cannot hold)."""
    errors = [{k: v for k, v in error.items() if k != "input"} for error in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


#: Seconds a client should wait before retrying while the database is unreachable (restart, failover).
DATABASE_RETRY_AFTER_S = 2


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The database cannot be reached (restarted, failing over, SQLite locked too long): 503 + Retry-After,
    so clients retry (answers are idempotent); the failed connection made SQLAlchemy discard the pool's others."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    log.warning(
        "database unavailable on %s %s: %s",
        request.method,
        logredact.redact_path(request.url.path),
        str(orig).strip()[:500],
    )
    return JSONResponse(
        {"detail": "the database is unavailable right now; retry in a few seconds"},
        status_code=503,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )


async def _unstorable_value(request: Request, exc: Exception) -> JSONResponse:
    """A value of the request that the database cannot hold: a number past its integer range (an id like
    2**70), a NUL character in a text (PostgreSQL refuses those). No row can match such a value, and it is the
    client's to fix: 422, not a 500."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc  # not the statement's parameters
    log.info("unstorable value on %s %s: %s", request.method, logredact.redact_path(request.url.path), str(orig)[:200])
    return JSONResponse(
        {
            "detail": "a value of the request is out of range or holds a NUL character; send ids within 64-bit "
            "integers and text without NUL"
        },
        status_code=422,
    )


async def _storage_error(request: Request, exc: StorageError) -> JSONResponse:
    log.error("blob store failure on %s %s: %s", request.method, logredact.redact_path(request.url.path), exc)
    return JSONResponse({"detail": f"the service cannot store or read data right now: {exc}"}, status_code=503)
