"""The end-of-study questionnaire of a session: stored once, after the last trial (see
`backend.study.questionnaire` for the items and the check of the answers).

Like a trial's answer, a repeat of the same answers is acknowledged and different ones are refused (409), so a
client may retry; two simultaneous submissions are settled by one conditional UPDATE (``questionnaire IS
NULL``): exactly one writes, the other compares with what was written.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.db import rowcount
from backend.models import Participant
from backend.services.errors import ConflictError, InvalidInputError
from backend.services.participants import participant_by_token, study_config
from backend.study.questionnaire import check_answers


def submit_questionnaire(session: Session, token: str, answers: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Store the session's questionnaire answers: (stored answers, created). 409 before the last trial is
    answered, for a study without a questionnaire, or for answers that differ from those stored; 422 for
    answers the items do not allow."""
    participant = participant_by_token(session, token)
    items = study_config(participant.study).questionnaire
    if not items:
        raise ConflictError("this study has no questionnaire")
    if participant.completed_at is None:
        raise ConflictError("the questionnaire comes after the trials; answer the remaining trials first")
    try:
        checked = check_answers(items, answers)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    if participant.questionnaire is None:
        written = session.execute(
            update(Participant)
            .where(Participant.id == participant.id, Participant.questionnaire.is_(None))
            .values(questionnaire=checked)
            .execution_options(synchronize_session=False)
        )
        if rowcount(written) == 1:
            return checked, True
    stored = session.scalar(
        select(Participant.questionnaire)
        .where(Participant.id == participant.id)
        .execution_options(populate_existing=True)
    )
    if stored != checked:
        raise ConflictError("the questionnaire is already answered with different answers; they cannot be changed")
    return checked, False
