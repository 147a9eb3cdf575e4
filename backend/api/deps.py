"""Dependencies of the routes, written once: the request's transaction, settings, blob store, the caller.

`SessionDep` is one transaction per request, committed after the route returns and *before* the response is
sent (FastAPI's `scope="function"`), so a failed commit is an error response, never a 2xx for lost data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Annotated, TypeVar

from anyio import to_thread
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from backend.auth import user_for_token
from backend.db import session_scope
from backend.models import Job, Participant, Study, User
from backend.ratelimits import RateLimits
from backend.services.ownership import require_owner
from backend.services.participants import participant_by_token
from backend.settings import Settings
from backend.storage import BlobStore


def get_db(request: Request) -> Iterator[Session]:
    with session_scope(request.app.state.session_factory) as session:
        yield session


_T = TypeVar("_T")


async def in_transaction(request: Request, work: Callable[[Session], _T], *, enrolment: bool = False) -> _T:
    """`work(session)` in one transaction, committed before it returns, all in one thread-pool thread.

    The participant protocol's routes are `async` and do their whole database part through this: one thread
    hand-off per request instead of one per dependency, and no connection held while a request waits for a
    thread (a sync route's dependencies, body and serialisation each take a thread in turn; under load every
    thread could be waiting for a connection or a row lock that another waiting request held). `work` builds
    the answer from the rows before the commit, and a failed commit raises, so no 2xx is ever sent for an
    answer that was not stored. At most `DB_THREADS` of these run at once per process (`app.state.db_limiter`);
    the rest wait in the event loop, holding nothing. Session starts (`enrolment`) have their own, smaller
    limiter: they are several times dearer (a schedule, a row per trial) and come in bursts, and must not take
    the slots of the per-trial requests (a burst of new participants otherwise stalled everyone's next trial
    for seconds).
    """
    factory = request.app.state.session_factory

    def run() -> _T:
        with session_scope(factory) as session:
            return work(session)

    state = request.app.state
    return await to_thread.run_sync(run, limiter=state.enrol_limiter if enrolment else state.db_limiter)


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_storage(request: Request) -> BlobStore:
    return request.app.state.storage


#: Sends a committed job's Celery task (`backend.queue.enqueue`); tests override `get_enqueuer` with a fake.
Enqueuer = Callable[[Job], object]


def get_enqueuer(request: Request) -> Enqueuer:
    """`enqueue` on the broker of the app's settings (which may differ from the process's `SIPAT_*`)."""
    from backend.queue import enqueue, get_celery  # imported late: no broker client until a job is sent

    celery = get_celery(request.app.state.settings)
    return partial(enqueue, app=celery)


SessionDep = Annotated[Session, Depends(get_db, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
StorageDep = Annotated[BlobStore, Depends(get_storage)]
EnqueueDep = Annotated[Enqueuer, Depends(get_enqueuer)]

_bearer = HTTPBearer(
    auto_error=False,
    description="A research API token: `sipat-admin create-token EMAIL` prints one.",
)


def get_current_user(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The owner of the request's bearer token; 401 with a WWW-Authenticate challenge otherwise.

    A client that sent too many unknown or revoked tokens is refused 429 before its token is looked up
    (`backend.ratelimits`: guessing tokens costs a lookup each, and must stay bounded).
    """
    limits: RateLimits = request.app.state.rate_limits
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API token; send 'Authorization: Bearer <token>' (create one with sipat-admin create-token)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    limits.check_token_failures(request)
    user = user_for_token(session, credentials.credentials)
    if user is None:
        limits.token_failed(request)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "the API token is unknown or revoked; create a new one with sipat-admin create-token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return user


def get_admin_user(user: Annotated[User, Depends(get_current_user)]) -> User:
    if not user.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this needs an administrator's token")
    return user


def get_participant(token: str, session: SessionDep) -> Participant:
    """The participant whose session token is in the path; 404 for an unknown token.

    The read transaction is ended here (the row stays loaded): FastAPI runs the route in another pool thread,
    and a request must not hold a database connection while it waits for a free thread, or a burst of
    requests can take every connection and every thread at once (see `in_transaction`).
    """
    participant = participant_by_token(session, token)
    session.commit()
    return participant


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_study_access(session: Session, user: User, study_id: object) -> None:
    """The owner rule for a study (`backend.services.ownership.require_owner`, the one rule for every owned
    row): an administrator reaches every study, a researcher only the studies they created (403 otherwise; an
    unknown id is left to the caller's 404). Studies without an owner (created before owners were recorded)
    are the administrators'."""
    require_owner(session, user, Study, study_id)


def check_study_access(request: Request, user: CurrentUser, session: SessionDep) -> None:
    """`require_study_access` for every research route with a `study_id` in its path (a router dependency)."""
    study_id = request.path_params.get("study_id")
    if study_id is not None:
        require_study_access(session, user, study_id)


AdminUser = Annotated[User, Depends(get_admin_user)]
ParticipantDep = Annotated[Participant, Depends(get_participant)]
