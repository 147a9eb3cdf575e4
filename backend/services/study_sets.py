"""The stimulus sets of a study with several (`StudyConfig.compare_stimulus_set_ids`): which may be compared.

The rule: compared sets show the same images on one eps axis, so their detection curves and thresholds can be
read side by side and subtracted. Every set must come from the first set's dataset, with its norm and its eps
levels; they may differ in anything else (masked or not, model, attack, steps). The main phase uses the images
all sets have complete (at every level), each image shown in one set per participant (`backend.study.schedule`).
A violated rule is a 422 when the study is created or edited (the set rows say it before any image exists); a set
that is missing, failed or has too few shared images is what `check_ready` reports before the study can open.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from backend.models import Job, StimulusSet, User
from backend.services.errors import InvalidInputError
from backend.services.lookups import get_referenced
from backend.services.ownership import require_owner
from backend.services.study_defaults import complete_images, planned_images, set_levels
from backend.study.config import StudyConfig

FIRST_FIELD = "config.stimulus_set_id"
COMPARE_FIELD = "config.compare_stimulus_set_ids"


def field_of(position: int) -> str:
    return FIRST_FIELD if position == 0 else COMPARE_FIELD


def referenced_sets(session: Session, config: StudyConfig, owner: User | None) -> list[StimulusSet]:
    """The study's sets, first set first: 403 for a set `owner` may not use (the owner rule before anything
    else is told), 422 for an unknown id or a set that breaks the comparison rule (see the module doc)."""
    if owner is not None:
        for position, set_id in enumerate(config.stimulus_set_ids):
            require_owner(session, owner, StimulusSet, set_id, field=field_of(position))
    sets = [
        get_referenced(session, StimulusSet, set_id, field=field_of(position))
        for position, set_id in enumerate(config.stimulus_set_ids)
    ]
    first = sets[0]
    for other in sets[1:]:
        problems = mismatches(first, other)
        if problems:
            raise InvalidInputError(
                f"{COMPARE_FIELD}: stimulus set {other.id} cannot be compared with set {first.id}: "
                f"{'; '.join(problems)}. Compared sets show the same images on one eps axis (e.g. the same images "
                "and model, masked and unmasked): use sets made from one dataset with one norm and eps levels"
            )
    return sets


def mismatches(first: StimulusSet, other: StimulusSet) -> list[str]:
    """What keeps `other` from being compared with `first` (empty: nothing)."""
    out = []
    if other.dataset_id != first.dataset_id:
        out.append(f"its dataset is {other.dataset_id}, not {first.dataset_id}")
    if other.norm != first.norm:
        out.append(f"its norm is {other.norm}, not {first.norm}")
    if _rounded(set_levels(other)) != _rounded(set_levels(first)):
        out.append(f"its eps levels are {set_levels(other)}, not {set_levels(first)}")
    return out


def _rounded(levels: list[float]) -> list[float]:
    return [round(e, 9) for e in levels]


@dataclass(frozen=True)
class SetsState:
    """What the study's sets can serve: the first set (None if missing), problems that block opening, whether a
    set is still being made, and the images the main phase can use (planned ones while a set is being made)."""

    first: StimulusSet | None
    problems: list[str]
    preparing: bool
    images: list[int]


def sets_state(session: Session, config: StudyConfig) -> SetsState:
    """The state of every set of the study (see `SetsState`); stops at the first missing or failed set."""
    sets: list[StimulusSet] = []
    for position, set_id in enumerate(config.stimulus_set_ids):
        sset = session.get(StimulusSet, set_id)
        first = sets[0] if sets else sset
        if sset is None:
            return SetsState(first, [f"stimulus set {set_id} does not exist; PATCH {field_of(position)}"], False, [])
        if sset.status == "failed":
            job = session.get(Job, sset.job_id) if sset.job_id is not None else None
            reason = f" ({job.error})" if job is not None and job.error else ""
            fix = "regenerate it (POST /jobs) or use another set"
            return SetsState(first, [f"stimulus set {sset.id} failed to generate{reason}; {fix}"], False, [])
        sets.append(sset)
    problems = [f"stimulus set {o.id}: {'; '.join(mismatches(sets[0], o))}" for o in sets[1:] if mismatches(sets[0], o)]
    levels = set_levels(sets[0])
    if any(s.status in ("pending", "generating") for s in sets):
        planned = min(planned_images(session, s) for s in sets)
        return SetsState(sets[0], problems, True, list(range(planned)))
    shared = set(complete_images(session, sets[0], levels))
    for other in sets[1:]:
        shared &= set(complete_images(session, other, levels))
    if len(sets) > 1 and not shared:
        problems.append(
            f"stimulus sets {config.stimulus_set_ids} share no image with a stimulus at every eps level; compare sets "
            "made from the same images (same dataset, split and number of images)"
        )
    return SetsState(sets[0], problems, False, sorted(shared))
