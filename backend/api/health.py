"""Health probes for load balancers, orchestrators and `docker compose`.

* `GET /health/live`: the process serves requests (touches nothing else); restart the container when it fails.
* `GET /health/ready`: the database answers, its schema is at the code's migration head, and the blob store
  takes a write (`backend.health`); 503 with the failing checks otherwise, so traffic goes elsewhere until
  the migration ran or the volume is back, without restarting a healthy process.
* `GET /health`: database reachability, the original probe (kept for existing checks and scripts).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from backend.api.deps import SessionDep
from backend.health import check_blobs, check_database, check_migrations
from backend.schemas.common import HealthOut, LiveOut, ReadyOut

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut)
def health(session: SessionDep) -> HealthOut:
    session.execute(text("SELECT 1"))
    return HealthOut(status="ok", database="ok")


@router.get("/health/live", response_model=LiveOut)
async def live() -> LiveOut:
    """Answers as long as the event loop does; no database, so a database outage does not restart the API."""
    return LiveOut(status="ok")


@router.get("/health/ready", response_model=ReadyOut, responses={503: {"model": ReadyOut}})
def ready(request: Request) -> ReadyOut | JSONResponse:
    """Every check run (not only up to the first failure), each `ok` or what to fix; 503 unless all pass."""
    state = request.app.state
    with state.session_factory() as session:
        database = check_database(session)
        migrations = check_migrations(session) if database is None else "not checked: database unreachable"
    blobs = check_blobs(state.storage)
    checks = {"database": database, "migrations": migrations, "blobs": blobs}
    out = ReadyOut(
        status="ok" if all(v is None for v in checks.values()) else "unavailable",
        checks={name: problem or "ok" for name, problem in checks.items()},
    )
    if out.status != "ok":
        return JSONResponse(out.model_dump(), status_code=503, headers={"Retry-After": "5"})
    return out
