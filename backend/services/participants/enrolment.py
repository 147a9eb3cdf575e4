"""Enrolment: start (or resume) a session of a study, with its whole schedule fixed at the start.

A session's schedule is `backend.study.schedule.build_schedule` with the participant's 0-based index within
the study (which drives the counterbalancing), stored as `trials` rows pointing to stimuli. A study with an
active painting pool puts the newest ranking's unclaimed images first (`backend.services.paint_next`).
"""

from __future__ import annotations

import math
import random
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy import Table, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from backend.auth import token_hash
from backend.models import (
    Image,
    Participant,
    Stimulus,
    StimulusSet,
    Study,
    Trial,
)
from backend.services.errors import ConflictError, InvalidInputError, NotFoundError, UnavailableError
from backend.services.paint_next import annotate_order
from backend.services.participants.statements import TAKE_INDEX
from backend.services.resume import check_resume
from backend.study.config import StudyConfig
from backend.study.schedule import TrialSpec, build_schedule

#: Seconds a participant's browser should wait before asking again while stimuli are being generated (the
#: demo's take well under a minute: a participant should not wait 30 s after they are ready).
PREPARING_RETRY_AFTER_S = 5
_ENROLL_ATTEMPTS = 8
_EPS_TOLERANCE = 1e-9
#: Where a simulated session may start: a researcher pilots a draft before opening it.
_SIMULATE_STATUSES = ("open", "draft")


# --- studies ---------------------------------------------------------------------------------------------


def get_study(session: Session, slug: str) -> Study:
    """The study `slug` (404 if none)."""
    study = session.scalar(select(Study).where(Study.slug == slug))
    if study is None:
        raise NotFoundError(f"no study with slug {slug!r}; check the link you were given")
    return study


def study_config(study: Study) -> StudyConfig:
    return validated_config(study.config, study.slug)


def validated_config(config: dict[str, Any], slug: str) -> StudyConfig:
    try:
        return StudyConfig.model_validate(config)
    except ValidationError as exc:
        raise UnavailableError(
            f"study {slug!r} cannot run: its configuration is invalid ({exc.error_count()} errors); "
            "a researcher must fix it"
        ) from None


# --- sessions --------------------------------------------------------------------------------------------


def start_session(
    session: Session,
    slug: str,
    *,
    consent: bool,
    external_id: str | None = None,
    recruitment: dict[str, Any] | None = None,
    client_info: dict[str, Any] | None = None,
    simulated: bool = False,
) -> Enrolment:
    """A new session of study `slug` with its schedule, or the existing one of `external_id` (created False).

    Raises InvalidInputError without consent, NotFoundError for an unknown slug, ConflictError when the study
    is not open, UnavailableError (503, Retry-After) while its stimuli are being generated.

    Commits twice: the participant index is taken from the study's counter (`_take_index`) in a transaction
    of its own, so the study's row, which every enrolment of the study must lock, is locked for one UPDATE;
    then the session and its trials are written in the caller's transaction. An index whose session could not
    be written (a failure, or a race with a simultaneous start of the same external id) is not reused: indices
    are unique and increasing, with rare gaps, which shift the rotation as a dropout does.

    `simulated`: a researcher's pilot run (the caller checked who may: `backend.api.simulation`); it may also
    start while the study is a draft, and its session is marked so results and exports leave it out. It takes
    an index like any session (a pilot on an open study shifts the rotation as a dropout does).
    """
    if consent is not True:
        raise InvalidInputError("consent must be true: the participant has to accept the consent text first")
    for attempt in range(_ENROLL_ATTEMPTS):
        if attempt:
            time.sleep(random.uniform(0.005, 0.05) * attempt)
        study = get_study(session, slug)
        if external_id is not None:
            existing = session.scalar(
                select(Participant).where(Participant.study_id == study.id, Participant.external_id == external_id)
            )
            if existing is not None and existing.simulated != simulated:
                kind = "a simulated" if existing.simulated else "a real participant's"
                raise ConflictError(f"external id {external_id!r} belongs to {kind} session; use another id")
            if existing is not None:  # a new token: only its hash is stored, and the old one stops working
                check_resume(session, existing)  # 409 while the session is in progress (backend.services.resume)
                token = secrets.token_urlsafe(24)
                existing.token_hash = token_hash(token)
                return Enrolment(existing, token, created=False)
        statuses = _SIMULATE_STATUSES if simulated else ("open",)
        if study.status not in statuses:
            raise ConflictError(f"study {slug!r} is {study.status}, not open; it does not accept participants now")
        stimuli = _StudyStimuli.load(session, study_config(study).stimulus_set_ids)  # 503 before taking an index
        try:
            index, config = _take_index(session, study, statuses)
            if config.stimulus_set_ids != stimuli.set_ids:  # changed in the meantime
                stimuli = _StudyStimuli.load(session, config.stimulus_set_ids)
            specs = stimuli.schedule(config, index, annotate_order(session, study.id, config).order)
            stimulus_ids = [stimuli.stimulus_id(spec) for spec in specs]
            token = secrets.token_urlsafe(24)
            participant = Participant(
                study_id=study.id,
                token_hash=token_hash(token),
                external_id=external_id,
                index=index,
                consent=True,
                client_info=client_info or {},
                recruitment=recruitment,
                simulated=simulated,
            )
            session.add(participant)
            session.flush()
            session.execute(  # one executemany, no ORM objects
                insert(cast(Table, Trial.__table__)),
                [
                    {
                        "participant_id": participant.id,
                        "position": spec.position,
                        "phase": spec.phase,
                        "stimulus_id": stimulus_id,
                        "media_key": secrets.token_urlsafe(18),
                    }
                    for spec, stimulus_id in zip(specs, stimulus_ids, strict=True)
                ],
            )
            return Enrolment(participant, token, created=True, trials=len(specs))
        except (IntegrityError, OperationalError) as exc:
            # A simultaneous start of the same external id won (or SQLite was busy): start over and look again.
            session.rollback()
            if not _is_contention(exc):
                raise
    raise ConflictError("too many participants are joining at this moment; try again in a few seconds")


def _take_index(session: Session, study: Study, statuses: tuple[str, ...]) -> tuple[int, StudyConfig]:
    """(index, configuration) for a new participant of `study`, committed at once (see `start_session`)."""
    row = session.execute(TAKE_INDEX, {"study_id": study.id, "statuses": list(statuses)}).first()
    session.commit()
    if row is None:
        raise ConflictError(f"study {study.slug!r} was closed just now; it does not accept participants now")
    return row.next_index - 1, validated_config(row.config, study.slug)


@dataclass(frozen=True)
class Enrolment:
    """What `start_session` did: the session, its token (known only here: the database keeps its hash),
    whether it is new, and (when new) its number of trials."""

    participant: Participant
    token: str
    created: bool
    trials: int | None = None


def _is_contention(exc: DBAPIError) -> bool:
    """Whether a failed enrolment lost a race (unique index, SQLite lock) rather than hit a real fault."""
    text = str(exc.orig).lower()
    if isinstance(exc, IntegrityError):
        return "unique" in text or "duplicate" in text
    return any(word in text for word in ("locked", "busy", "could not serialize", "deadlock"))


@dataclass
class _StimulusIndex:
    """The stimuli of one set by (image, role), for turning schedule entries into stimulus ids."""

    stimulus_set: StimulusSet
    by_image: dict[tuple[int, str], list[tuple[float, int]]]
    #: split -> image ids of the set's `annotate` stimuli (the annotation pools, see StudyConfig)
    pools: dict[str | None, list[int]] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session, stimulus_set_id: int) -> _StimulusIndex:
        sset = session.get(StimulusSet, stimulus_set_id)
        if sset is None:
            raise UnavailableError(
                f"study cannot run: its stimulus set {stimulus_set_id} does not exist; a researcher must fix it"
            )
        rows = session.execute(
            select(Stimulus.image_id, Stimulus.role, Stimulus.eps, Stimulus.id).where(
                Stimulus.stimulus_set_id == stimulus_set_id
            )
        ).all()
        if not rows or sset.status in ("pending", "generating"):
            raise UnavailableError(
                "This study is being prepared: its images are still being made. This page tries again by itself "
                "in a few seconds.",
                retry_after_s=PREPARING_RETRY_AFTER_S,
            )
        by_image: dict[tuple[int, str], list[tuple[float, int]]] = defaultdict(list)
        for image_id, role, eps, stimulus_id in rows:
            by_image[(image_id, role)].append((eps, stimulus_id))
        pools: dict[str | None, list[int]] = defaultdict(list)
        for image_id, split in session.execute(
            select(Stimulus.image_id, Image.split)
            .join(Image, Image.id == Stimulus.image_id)
            .where(Stimulus.stimulus_set_id == stimulus_set_id, Stimulus.role == "annotate")
        ):
            pools[split].append(image_id)
        return cls(sset, dict(by_image), dict(pools))

    def trial_images(self) -> list[int]:
        return sorted({image_id for image_id, role in self.by_image if role == "trial"})

    def levels(self) -> list[float]:
        return sorted({0.0, *(float(e) for e in self.stimulus_set.eps_levels)})

    def schedule(
        self,
        config: StudyConfig,
        participant_index: int,
        image_ids: list[int] | None = None,
        annotate_first: list[int] | None = None,
    ) -> list[TrialSpec]:
        """`build_schedule` on this set's images, or on `image_ids` (the images every compared set has)."""
        try:
            return build_schedule(
                config,
                participant_index=participant_index,
                image_ids=self.trial_images() if image_ids is None else image_ids,
                eps_levels=self.levels(),
                annotate_image_ids=self.pools.get(config.annotation_split) if config.annotation_split else None,
                annotate_first=annotate_first,
            )
        except ValueError as exc:
            raise UnavailableError(f"study cannot run: {exc}; a researcher must fix the study") from None

    def stimulus_id(self, spec: TrialSpec) -> int:
        role = "catch" if spec.phase == "catch" else "trial"
        if spec.phase == "annotate" and (spec.image_id, "annotate") in self.by_image:
            role = "annotate"  # an image of the annotation pool (one also in the detection set: its pool row)
        for eps, stimulus_id in self.by_image.get((spec.image_id, role), []):
            if math.isclose(eps, spec.eps, rel_tol=_EPS_TOLERANCE, abs_tol=_EPS_TOLERANCE):
                return stimulus_id
        raise UnavailableError(
            f"study is being prepared: stimulus set {self.stimulus_set.id} has no {role} stimulus of image "
            f"{spec.image_id} at eps {spec.eps}",
            retry_after_s=PREPARING_RETRY_AFTER_S if self.stimulus_set.status != "ready" else None,
        )


@dataclass
class _StudyStimuli:
    """The stimuli of every set of a study (`StudyConfig.stimulus_set_ids`), the first set's first.

    The main phase uses the images every set has complete; practice, catch and annotation trials come from the
    first set (`backend.study.schedule`). A `TrialSpec.set_index` picks the set its stimulus is looked up in.
    """

    sets: list[_StimulusIndex]

    @classmethod
    def load(cls, session: Session, set_ids: list[int]) -> _StudyStimuli:
        return cls([_StimulusIndex.load(session, set_id) for set_id in set_ids])

    @property
    def set_ids(self) -> list[int]:
        return [index.stimulus_set.id for index in self.sets]

    def schedule(
        self, config: StudyConfig, participant_index: int, annotate_first: list[int] | None = None
    ) -> list[TrialSpec]:
        first, *others = self.sets
        if not others:
            return first.schedule(config, participant_index, annotate_first=annotate_first)
        levels = first.levels()
        images = set(first.trial_images())
        for other in others:
            if other.levels() != levels:
                raise UnavailableError(
                    f"study cannot run: stimulus set {other.stimulus_set.id} has eps levels {other.levels()}, set "
                    f"{first.stimulus_set.id} {levels}; compared sets need the same levels, a researcher must fix it"
                )
            images &= set(other.trial_images())
        return first.schedule(config, participant_index, image_ids=sorted(images), annotate_first=annotate_first)

    def stimulus_id(self, spec: TrialSpec) -> int:
        return self.sets[spec.set_index].stimulus_id(spec)
