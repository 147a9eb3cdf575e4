"""The completion flag applies the study's own catch rule (`exclusions.max_catch_errors`), the results' rule."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import Participant, Response, Trial
from backend.services import participants as svc
from backend.services.results import study_results
from backend.storage import BlobStore
from tests.backend.factories import make_open_study


def _run(session: Session, token: str, catch_judgment: str) -> Participant:
    """Answer every detection trial of the session: catch trials with `catch_judgment`, the rest 'perturbed'."""
    while (p := svc.progress(session, token)).trial is not None:
        trial = p.trial
        assert trial.phase != "annotate"  # the studies here have no annotation trials
        phase = session.scalar(select(Trial.phase).where(Trial.id == trial.id))
        judgment = catch_judgment if phase == "catch" else "perturbed"
        svc.submit_response(
            session, token, trial.id, judgment=judgment, confidence=2, rt_ms=500.0, client_timestamps={}
        )
    session.commit()
    return svc.participant_by_token(session, token)


@pytest.mark.parametrize(("limit", "flagged"), [(0, True), (1, True), (2, False), (3, False)])
def test_flag_follows_the_studys_max_catch_errors(
    session: Session, storage: BlobStore, limit: int, flagged: bool
) -> None:
    """Two missed catch trials: flagged exactly when the study allows fewer than two (the default of 1
    would flag in every case, which is what the hard-coded limit did)."""
    make_open_study(session, storage, n_catch=2, n_annotate=0, exclusions={"max_catch_errors": limit})
    token = svc.start_session(session, "pilot", consent=True).token
    session.commit()
    person = _run(session, token, "clean")
    assert person.completed_at is not None
    assert person.flagged is flagged
    misses = session.scalar(
        select(Response.id).join(Trial).where(Trial.phase == "catch", Response.judgment == "clean").limit(1)
    )
    assert misses is not None
    # The results page excludes the same people by the same rule.
    results = study_results(session, person.study_id, participant_level=False)
    assert [e.participant_id for e in results.excluded] == ([person.id] if flagged else [])


def test_no_misses_never_flags_even_at_zero(session: Session, storage: BlobStore) -> None:
    make_open_study(session, storage, n_catch=2, n_annotate=0, exclusions={"max_catch_errors": 0})
    token = svc.start_session(session, "pilot", consent=True).token
    session.commit()
    assert _run(session, token, "perturbed").flagged is False
