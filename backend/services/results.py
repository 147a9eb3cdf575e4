"""A study's detection results: per-eps statistics, catch-trial exclusions and the psychometric fit.

The numbers come from `backend.study.analysis` (Wilson intervals, log-linear d', ML fit with parametric
bootstrap); this module only gathers the rows from the database. Main-phase responses are scored; catch-trial
responses decide exclusions (more than `MAX_CATCH_ERRORS` misses, the rule that also flags a participant at
completion). `masked` comes from the stimulus set of each stimulus, so a table always says which perturbation
(sparing the salient pixels or not) its detection rates are about.

Two views of the same trials: the pooled one (`eps`, `psychometric`: every trial as if independent, the
"trials view") and the participant-level one (`participants`: a bootstrap over people, per-person d' and
thresholds, the masked-vs-unmasked difference; `model`: a GEE logistic model with participants as clusters).
Only the second carries a claim about people in general; see `backend.study.participants`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import Participant, Response, Stimulus, StimulusSet, Study, Trial
from backend.services.lookups import get_or_404
from backend.study.analysis import MAX_CATCH_ERRORS, catch_exclusions, eps_table, fit_psychometric
from backend.study.model import condition_model
from backend.study.participants import participant_analysis


@dataclass(frozen=True)
class ExcludedParticipant:
    participant_id: int
    index: int
    external_id: str | None
    catch_trials: int
    catch_errors: int


@dataclass
class StudyResults:
    study: Study
    stimulus_set: StimulusSet | None
    exclusions_applied: bool
    max_catch_errors: int
    n_participants: int
    n_participants_included: int
    n_main_responses: int
    excluded: list[ExcludedParticipant]
    eps: list[dict[str, Any]]
    psychometric: dict[str, Any] | None
    psychometric_reason: str | None
    #: The main-phase rows counted above (eps, judgment, participant_id, masked, confidence, rt_ms, phase).
    responses: list[dict[str, Any]] = field(default_factory=list, repr=False)
    #: `backend.study.participants.participant_analysis` of the same rows (None when not asked for).
    participants: dict[str, Any] | None = None
    #: `backend.study.model.condition_model` of the same rows (None when not asked for).
    model: dict[str, Any] | None = None


def _rows(session: Session, study_id: int, phase: str) -> list[dict[str, Any]]:
    rows = session.execute(
        select(
            Stimulus.eps,
            Response.judgment,
            Trial.participant_id,
            StimulusSet.masked,
            Response.confidence,
            Response.rt_ms,
            Trial.phase,
        )
        .join(Trial, Trial.id == Response.trial_id)
        .join(Participant, Participant.id == Trial.participant_id)
        .join(Stimulus, Stimulus.id == Trial.stimulus_id)
        .join(StimulusSet, StimulusSet.id == Stimulus.stimulus_set_id)
        .where(Participant.study_id == study_id, Trial.phase == phase)
    ).all()
    return [row._asdict() for row in rows]


def study_results(
    session: Session,
    study_id: int,
    *,
    include_excluded: bool = False,
    n_boot: int = 200,
    seed: int = 0,
    masked: bool | None = None,
    participant_level: bool = True,
) -> StudyResults:
    """Results of the main phase; participants failing the catch trials are left out unless
    `include_excluded` (they are listed either way). The psychometric fit needs two positive eps levels with
    data; otherwise it is None and `psychometric_reason` says why. `masked` True/False keeps only the perturbed
    trials of masked/unmasked stimuli (with every clean trial, the false-alarm floor of both).
    `participant_level` adds the participant bootstrap (``n_boot`` resamples, ``seed``) and the GEE model;
    False skips them (they cost about a second per 200 resamples)."""
    study = get_or_404(session, Study, study_id)
    sset_id = (study.config or {}).get("stimulus_set_id")
    sset = session.get(StimulusSet, sset_id) if isinstance(sset_id, int) else None

    main = _rows(session, study.id, "main")
    catch = _rows(session, study.id, "catch")
    flagged = catch_exclusions(catch, max_catch_errors=MAX_CATCH_ERRORS)
    excluded = _describe(session, flagged, catch)
    drop = set() if include_excluded else set(flagged)
    kept = [row for row in main if row["participant_id"] not in drop]
    if masked is not None:
        kept = [row for row in kept if row["eps"] == 0 or bool(row["masked"]) == masked]

    fit, reason = _fit(kept, n_boot=n_boot, seed=seed)
    return StudyResults(
        study=study,
        stimulus_set=sset,
        exclusions_applied=not include_excluded,
        max_catch_errors=MAX_CATCH_ERRORS,
        n_participants=len({row["participant_id"] for row in main} | {row["participant_id"] for row in catch}),
        n_participants_included=len({row["participant_id"] for row in kept}),
        n_main_responses=len(kept),
        excluded=excluded,
        eps=eps_table(kept),
        psychometric=fit,
        psychometric_reason=reason,
        responses=kept,
        participants=participant_analysis(kept, n_boot=n_boot, seed=seed) if participant_level else None,
        model=condition_model(kept) if participant_level else None,
    )


def _describe(session: Session, flagged: list[int], catch: list[dict[str, Any]]) -> list[ExcludedParticipant]:
    if not flagged:
        return []
    people = {p.id: p for p in session.scalars(select(Participant).where(Participant.id.in_(flagged)))}
    out = []
    for pid in flagged:
        theirs = [row for row in catch if row["participant_id"] == pid]
        misses = sum(row["judgment"] != "perturbed" for row in theirs)
        person = people[pid]
        out.append(ExcludedParticipant(pid, person.index, person.external_id, len(theirs), misses))
    return out


def _fit(rows: list[dict[str, Any]], *, n_boot: int, seed: int) -> tuple[dict[str, Any] | None, str | None]:
    positive = sorted({float(row["eps"]) for row in rows if row["eps"] > 0})
    if len(positive) < 2:
        return None, (
            f"a psychometric fit needs responses at two or more positive eps levels; there are {len(positive)}"
            + (f" ({', '.join(f'{e:g}' for e in positive)})" if positive else "")
        )
    try:
        fit = fit_psychometric(
            [row["eps"] for row in rows],
            [row["judgment"] == "perturbed" for row in rows],
            guess=None,
            n_boot=n_boot,
            seed=seed,
        )
    except ValueError as exc:
        return None, f"the psychometric fit failed: {exc}"
    return fit.to_dict(), None
