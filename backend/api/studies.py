"""Studies: create, list, edit, open and close; their participants (progress, withdrawal) and results.

Study ids in paths are digits only (`{study_id:int}`), and slugs start with a letter, so these routes never
shadow the participant protocol's `/studies/{slug}`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from sqlalchemy.orm import Session

from backend.api.deps import CurrentUser, SessionDep, SettingsDep, StorageDep
from backend.models import StimulusSet, Study
from backend.schemas.common import ErrorOut
from backend.schemas.paging import MAX_LIMIT, Page
from backend.schemas.results import ExcludedParticipantOut, ResultsOut, RuleOut
from backend.schemas.studies import ParticipantStatusOut, StudyCreate, StudyOut, StudyUpdate, WithdrawalOut
from backend.services import studies as svc
from backend.services.lookups import get_or_404
from backend.services.ownership import owner_scope
from backend.services.results import study_results
from backend.settings import Settings

router = APIRouter(tags=["studies"])

_404: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut}}
Offset = Annotated[int, Query(ge=0)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


def _study_out(session: Session, settings: Settings, study: Study) -> StudyOut:
    n_participants, n_completed = svc.count_participants(session, study.id)
    set_id = (study.config or {}).get("stimulus_set_id")
    sset = session.get(StimulusSet, set_id) if isinstance(set_id, int) else None
    return StudyOut(
        id=study.id,
        slug=study.slug,
        title=study.title,
        status=study.status,  # type: ignore[arg-type]
        config=study.config,
        created_at=study.created_at,
        n_participants=n_participants,
        n_completed=n_completed,
        stimulus_set_status=sset.status if sset is not None else None,
        participant_url=f"{settings.public_base_url}/s/{study.slug}",
    )


@router.post(
    "/studies",
    response_model=StudyOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        403: {"model": ErrorOut, "description": "Its stimulus set belongs to another researcher."},
        409: {"model": ErrorOut, "description": "The slug is taken."},
        422: {"model": ErrorOut, "description": "Invalid config, or its stimulus set does not exist."},
    },
)
def create_study(body: StudyCreate, session: SessionDep, settings: SettingsDep, user: CurrentUser) -> StudyOut:
    """A draft study, owned by the caller; open it with POST /studies/{id}/open."""
    study = svc.create_study(session, slug=body.slug, title=body.title, config=body.config, owner=user)
    return _study_out(session, settings, study)


@router.get("/studies", response_model=Page[StudyOut])
def list_studies(
    session: SessionDep, settings: SettingsDep, user: CurrentUser, offset: Offset = 0, limit: Limit = 50
) -> Page[StudyOut]:
    """The caller's studies (an administrator's: all)."""
    studies, total = svc.list_studies(session, offset=offset, limit=limit, owner_id=owner_scope(user))
    items = [_study_out(session, settings, s) for s in studies]
    return Page[StudyOut](items=items, total=total, offset=offset, limit=limit)


@router.get("/studies/{study_id:int}", response_model=StudyOut, responses=_404)
def read_study(study_id: int, session: SessionDep, settings: SettingsDep) -> StudyOut:
    return _study_out(session, settings, get_or_404(session, Study, study_id))


@router.patch(
    "/studies/{study_id:int}",
    response_model=StudyOut,
    responses={
        **_404,
        409: {"model": ErrorOut, "description": "A schedule-shaping field would change after participants started."},
        422: {"model": ErrorOut},
    },
)
def update_study(study_id: int, body: StudyUpdate, session: SessionDep, settings: SettingsDep) -> StudyOut:
    study = svc.update_study(session, study_id, title=body.title, config_patch=body.config_patch())
    return _study_out(session, settings, study)


@router.post(
    "/studies/{study_id:int}/open",
    response_model=StudyOut,
    responses={**_404, 409: {"model": ErrorOut, "description": "What is missing before the study can open."}},
)
def open_study(study_id: int, session: SessionDep, settings: SettingsDep) -> StudyOut:
    """Accept participants. A stimulus set still being generated is fine (participants are asked to come back
    shortly until it is ready); a missing, failed or too small set is not."""
    study, _ = svc.open_study(session, study_id)
    return _study_out(session, settings, study)


@router.post("/studies/{study_id:int}/close", response_model=StudyOut, responses=_404)
def close_study(study_id: int, session: SessionDep, settings: SettingsDep) -> StudyOut:
    """Stop enrolling; participants who started can still finish."""
    return _study_out(session, settings, svc.close_study(session, study_id))


@router.get("/studies/{study_id:int}/participants", response_model=Page[ParticipantStatusOut], responses=_404)
def list_participants(
    study_id: int, session: SessionDep, offset: Offset = 0, limit: Limit = 100
) -> Page[ParticipantStatusOut]:
    rows, total = svc.list_participants(session, study_id, offset=offset, limit=limit)
    items = [
        ParticipantStatusOut(
            id=r.participant.id,
            index=r.participant.index,
            external_id=r.participant.external_id,
            started_at=r.participant.started_at,
            completed_at=r.participant.completed_at,
            completed=r.participant.completed_at is not None,
            flagged=r.participant.flagged,
            trials_total=r.trials_total,
            trials_answered=r.trials_answered,
            catch_trials=r.catch_trials,
            catch_errors=r.catch_errors,
        )
        for r in rows
    ]
    return Page[ParticipantStatusOut](items=items, total=total, offset=offset, limit=limit)


@router.delete("/studies/{study_id:int}/participants/{participant_id}", response_model=WithdrawalOut, responses=_404)
def withdraw_participant(study_id: int, participant_id: int, session: SessionDep, storage: StorageDep) -> WithdrawalOut:
    """Withdrawal: delete the participant with their trials, responses and annotations; their mask files go
    too unless another annotation uses the same mask."""
    withdrawal = svc.withdraw_participant(session, study_id, participant_id)
    session.commit()  # the rows are gone for good before any blob is removed
    removed = svc.remove_unreferenced_blobs(session, storage, withdrawal.mask_blobs)
    return WithdrawalOut(
        participant_id=withdrawal.participant_id,
        deleted_trials=withdrawal.trials,
        deleted_responses=withdrawal.responses,
        deleted_annotations=withdrawal.annotations,
        deleted_mask_blobs=len(removed),
    )


@router.get("/studies/{study_id:int}/results", response_model=ResultsOut, responses=_404)
def read_results(
    study_id: int,
    session: SessionDep,
    include_excluded: Annotated[
        bool, Query(description="Count participants who fail the catch trials too (they are listed either way).")
    ] = False,
    n_boot: Annotated[int, Query(ge=0, le=2000, description="Bootstrap resamples of the psychometric fit.")] = 200,
    include_simulated: Annotated[
        bool, Query(description="Count simulated sessions (researchers' pilot runs, `?simulate=1`) too.")
    ] = False,
) -> ResultsOut:
    """Main-phase detection per eps (rates with Wilson 95% intervals, hit/false-alarm rates, d', RT and
    confidence), catch-trial exclusions, and the psychometric fit with eps at 50%/75%; a study of several
    stimulus sets adds `sets`, the sets side by side with the paired threshold differences."""
    r = study_results(
        session, study_id, include_excluded=include_excluded, n_boot=n_boot, include_simulated=include_simulated
    )
    sset = r.stimulus_set
    fields: dict[str, Any] = {
        "stimulus_set_id": sset.id if sset else None,
        "masked": sset.masked if sset else None,
        "attack": sset.attack if sset else None,
        "norm": sset.norm if sset else None,
    }
    return ResultsOut(
        study_id=r.study.id,
        **fields,
        exclusions_applied=r.exclusions_applied,
        max_catch_errors=r.max_catch_errors,
        excluded=[ExcludedParticipantOut(**{**vars(e), "reasons": list(e.reasons)}) for e in r.excluded],
        rules=[RuleOut(**vars(rule)) for rule in r.rules],
        n_participants=r.n_participants,
        n_participants_included=r.n_participants_included,
        n_main_responses=r.n_main_responses,
        eps=r.eps,  # type: ignore[arg-type]
        psychometric=r.psychometric,  # type: ignore[arg-type]
        psychometric_reason=r.psychometric_reason,
        participants=r.participants,  # type: ignore[arg-type]
        model=r.model,  # type: ignore[arg-type]
        sets=r.sets,  # type: ignore[arg-type]
    )
