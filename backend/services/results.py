"""A study's detection results: per-eps statistics, catch-trial exclusions and the psychometric fit.

The numbers come from `backend.study.analysis` (Wilson intervals, log-linear d') and `backend.study.psychometric`
(ML fit with parametric bootstrap); this module only gathers the rows from the database. Main-phase responses are
scored; catch-trial responses decide exclusions (more than `ExclusionRules.max_catch_errors` misses, by default
the rule that also flags a participant at completion), as do the study's other `ExclusionRules` (too-fast responses,
completion time); each rule's count is reported. `masked` comes from the stimulus set of each stimulus, so a
table always says which perturbation (sparing the salient pixels or not) its detection rates are about.

Two views of the same trials: the pooled one (`eps`, `psychometric`: every trial as if independent, the
"trials view") and the participant-level one (`participants`: a bootstrap over people, per-person d' and
thresholds, the masked-vs-unmasked difference; `model`: a GEE logistic model with participants as clusters;
`sets`: a study of several stimulus sets compared side by side, `backend.study.sets`).
Only the second carries a claim about people in general; see `backend.study.participants`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import Participant, Response, Stimulus, StimulusSet, Study, Trial
from backend.services.lookups import get_or_404
from backend.study.analysis import catch_exclusions, eps_table
from backend.study.config import ExclusionRules
from backend.study.model import condition_model
from backend.study.participants import participant_analysis
from backend.study.psychometric import fit_psychometric
from backend.study.sets import SetInfo, set_comparison


@dataclass(frozen=True)
class ExcludedParticipant:
    participant_id: int
    index: int
    external_id: str | None
    catch_trials: int
    catch_errors: int
    #: The rules that exclude them: "catch", "fast_responses", "completion_time".
    reasons: tuple[str, ...] = ("catch",)


@dataclass(frozen=True)
class RuleCount:
    """One exclusion rule as configured and how much it excludes on its own (rules overlap)."""

    rule: str
    setting: float | int | None
    participants: int
    responses: int


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
    #: Each rule of the study's `ExclusionRules` with what it excludes on its own.
    rules: list[RuleCount] = field(default_factory=list)
    #: `backend.study.sets.set_comparison` of a study of several stimulus sets (None for one set, or when the
    #: participant level is not asked for).
    sets: dict[str, Any] | None = None


def _rows(session: Session, study_id: int, phase: str, include_simulated: bool = False) -> list[dict[str, Any]]:
    query = (
        select(
            Stimulus.eps,
            Response.judgment,
            Trial.participant_id,
            StimulusSet.masked,
            Response.confidence,
            Response.rt_ms,
            Trial.phase,
            Response.focus_losses,
            Response.visibility_losses,
            Stimulus.stimulus_set_id,
        )
        .join(Trial, Trial.id == Response.trial_id)
        .join(Participant, Participant.id == Trial.participant_id)
        .join(Stimulus, Stimulus.id == Trial.stimulus_id)
        .join(StimulusSet, StimulusSet.id == Stimulus.stimulus_set_id)
        .where(Participant.study_id == study_id, Trial.phase == phase)
    )
    if not include_simulated:  # a researcher's pilot runs are not data (`backend.api.simulation`)
        query = query.where(Participant.simulated.is_(False))
    return [row._asdict() for row in session.execute(query).all()]


def study_results(
    session: Session,
    study_id: int,
    *,
    include_excluded: bool = False,
    n_boot: int = 200,
    seed: int = 0,
    masked: bool | None = None,
    participant_level: bool = True,
    include_simulated: bool = False,
) -> StudyResults:
    """Results of the main phase; participants failing the catch trials are left out unless
    `include_excluded` (they are listed either way). The psychometric fit needs two positive eps levels with
    data; otherwise it is None and `psychometric_reason` says why. `masked` True/False keeps only the perturbed
    trials of masked/unmasked stimuli (with every clean trial, the false-alarm floor of both).
    `participant_level` adds the participant bootstrap (``n_boot`` resamples, ``seed``) and the GEE model;
    False skips them (they cost about a second per 200 resamples). Simulated sessions (a researcher's pilot
    runs) are left out unless `include_simulated`."""
    study = get_or_404(session, Study, study_id)
    sset_id = (study.config or {}).get("stimulus_set_id")
    sset = session.get(StimulusSet, sset_id) if isinstance(sset_id, int) else None

    config = ExclusionRules.model_validate((study.config or {}).get("exclusions") or {})
    main = _rows(session, study.id, "main", include_simulated)
    catch = _rows(session, study.id, "catch", include_simulated)
    flagged, rules, fast = _apply_rules(session, study.id, config, main, catch, include_simulated)
    excluded = _describe(session, flagged, catch)
    drop = set() if include_excluded else set(flagged)
    kept = [row for row in main if row["participant_id"] not in drop and id(row) not in fast]
    compared = _compared_sets(session, study, kept, n_boot=n_boot, seed=seed) if participant_level else None
    if masked is not None:
        kept = [row for row in kept if row["eps"] == 0 or bool(row["masked"]) == masked]

    fit, reason = _fit(kept, n_boot=n_boot, seed=seed)
    return StudyResults(
        study=study,
        stimulus_set=sset,
        exclusions_applied=not include_excluded,
        max_catch_errors=config.max_catch_errors,
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
        rules=rules,
        sets=compared,
    )


def _compared_sets(
    session: Session, study: Study, rows: list[dict[str, Any]], *, n_boot: int, seed: int
) -> dict[str, Any] | None:
    """The sets side by side (`backend.study.sets`) when the study compares several; None otherwise."""
    config = study.config or {}
    ids = [config.get("stimulus_set_id"), *(config.get("compare_stimulus_set_ids") or [])]
    if len(ids) < 2:
        return None
    found = {s.id: s for s in session.scalars(select(StimulusSet).where(StimulusSet.id.in_(ids)))}
    infos = [SetInfo(i, found[i].name or f"set {i}", bool(found[i].masked)) for i in ids if i in found]
    return set_comparison(rows, infos, n_boot=n_boot, seed=seed)


def _apply_rules(
    session: Session,
    study_id: int,
    config: ExclusionRules,
    main: list[dict[str, Any]],
    catch: list[dict[str, Any]],
    include_simulated: bool = False,
) -> tuple[dict[int, tuple[str, ...]], list[RuleCount], set[int]]:
    """Who each rule excludes: participant id -> the rules that exclude them; per-rule counts; and the ids
    (`id(row)`) of the too-fast main responses to drop (dropped even with `include_excluded`: a response
    under `min_rt_ms` is not a judgment of the image)."""
    reasons: dict[int, list[str]] = {}
    by_catch = catch_exclusions(catch, max_catch_errors=config.max_catch_errors)
    for pid in by_catch:
        reasons.setdefault(pid, []).append("catch")
    fast_rows: set[int] = set()
    by_fast: list[int] = []
    if config.min_rt_ms is not None:
        limit = config.min_rt_ms
        fast_rows = {id(r) for r in main if r["rt_ms"] is not None and r["rt_ms"] < limit}
        if config.max_fast_share is not None:
            per: dict[int, list[int]] = {}
            for r in main:
                per.setdefault(r["participant_id"], []).append(id(r) in fast_rows)
            by_fast = sorted(pid for pid, f in per.items() if sum(f) / len(f) > config.max_fast_share)
            for pid in by_fast:
                reasons.setdefault(pid, []).append("fast_responses")
    by_time: list[int] = []
    if config.min_completion_s is not None:
        query = select(Participant.id, Participant.started_at, Participant.completed_at).where(
            Participant.study_id == study_id, Participant.completed_at.is_not(None)
        )
        if not include_simulated:
            query = query.where(Participant.simulated.is_(False))
        people = session.execute(query).all()
        limit_s = config.min_completion_s
        by_time = sorted(pid for pid, start, end in people if end is not None and _seconds(start, end) < limit_s)
        for pid in by_time:
            reasons.setdefault(pid, []).append("completion_time")

    by_focus: list[int] = []
    if config.max_focus_lost_trials is not None:
        lost: dict[int, int] = {}
        for r in (*main, *catch):  # a trial during which the window lost focus or the page was hidden
            if (r.get("focus_losses") or 0) + (r.get("visibility_losses") or 0) > 0:
                lost[r["participant_id"]] = lost.get(r["participant_id"], 0) + 1
        by_focus = sorted(pid for pid, n in lost.items() if n > config.max_focus_lost_trials)
        for pid in by_focus:
            reasons.setdefault(pid, []).append("focus_losses")

    def responses_of(ids: list[int]) -> int:
        people = set(ids)
        return sum(r["participant_id"] in people for r in main)

    rules = [
        RuleCount("max_catch_errors", config.max_catch_errors, len(by_catch), responses_of(by_catch)),
        RuleCount("min_rt_ms", config.min_rt_ms, 0, len(fast_rows)),
        RuleCount("max_fast_share", config.max_fast_share, len(by_fast), responses_of(by_fast)),
        RuleCount("min_completion_s", config.min_completion_s, len(by_time), responses_of(by_time)),
        RuleCount("max_focus_lost_trials", config.max_focus_lost_trials, len(by_focus), responses_of(by_focus)),
    ]
    return {pid: tuple(v) for pid, v in sorted(reasons.items())}, rules, fast_rows


def _seconds(start: datetime, end: datetime) -> float:
    """Both are stored in UTC; a backend may return one of them naive (SQLite)."""
    return (end.replace(tzinfo=None) - start.replace(tzinfo=None)).total_seconds()


def _describe(
    session: Session, flagged: dict[int, tuple[str, ...]], catch: list[dict[str, Any]]
) -> list[ExcludedParticipant]:
    if not flagged:
        return []
    people = {p.id: p for p in session.scalars(select(Participant).where(Participant.id.in_(list(flagged))))}
    out = []
    for pid, why in flagged.items():
        theirs = [row for row in catch if row["participant_id"] == pid]
        misses = sum(row["judgment"] != "perturbed" for row in theirs)
        person = people[pid]
        out.append(ExcludedParticipant(pid, person.index, person.external_id, len(theirs), misses, why))
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
