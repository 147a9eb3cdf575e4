"""When a new start with a known recruitment id (PROLIFIC_PID, workerId) may resume the existing session.

A resume issues a new token and revokes the old one, so a person who knows someone's recruitment id (it is in
their study link, and Prolific ids appear in screenshots and forum posts) could take over a session in progress:
the participant's next request fails, and the stranger answers in their name. The rule:

* a session that is **completed**, or **idle** (no start and no answer for `RESUME_AFTER_IDLE_S`), may be
  resumed: that is the participant who closed the tab or lost the link and comes back;
* a session **in progress** (started or answered within that time) may not: the start is refused 409 with a
  message saying to continue in the window where the study is open, or to wait;
* except a start of a session less than `DOUBLE_START_GRACE_S` old with nothing answered yet: that is the
  same browser's start sent twice (a double click, a retried request), which must not fail.

A stranger can therefore take over only a session its owner left for `RESUME_AFTER_IDLE_S`, or race its very
first seconds, and the owner takes it back the same way.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.models import Annotation, Participant, Response, Trial, utcnow
from backend.services.errors import ConflictError

#: A session with activity more recent than this is in progress and cannot be resumed from elsewhere.
RESUME_AFTER_IDLE_S = 15 * 60
#: A session this young with nothing answered may be started again (the same browser's start sent twice).
DOUBLE_START_GRACE_S = 10


def last_answer_at(session: Session, participant_id: int) -> datetime | None:
    """When the participant last answered (a judgment or a mask), or None if never."""
    latest: datetime | None = None
    for model in (Response, Annotation):
        when = session.scalar(
            select(func.max(model.created_at))
            .join(Trial, Trial.id == model.trial_id)
            .where(Trial.participant_id == participant_id)
        )
        if when is not None:
            when = when if when.tzinfo is not None else when.replace(tzinfo=utcnow().tzinfo)
            latest = when if latest is None or when > latest else latest
    return latest


def check_resume(session: Session, participant: Participant, *, now: datetime | None = None) -> None:
    """Raise ConflictError (409) when `participant`'s session is in progress (see the module's rule)."""
    if participant.completed_at is not None:
        return
    now = now or utcnow()
    answered = last_answer_at(session, participant.id)
    started = participant.started_at
    if answered is None and now - started < timedelta(seconds=DOUBLE_START_GRACE_S):
        return
    last = max(started, answered) if answered is not None else started
    idle = now - last
    if idle >= timedelta(seconds=RESUME_AFTER_IDLE_S):
        return
    wait_min = math.ceil((RESUME_AFTER_IDLE_S - idle.total_seconds()) / 60)
    raise ConflictError(
        "a session with this participant id is in progress in another window or device; continue it there. "
        f"If you closed it, this link resumes it after {RESUME_AFTER_IDLE_S // 60} minutes without activity "
        f"(in about {wait_min} min)"
    )
