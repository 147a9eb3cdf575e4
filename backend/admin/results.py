"""A study's results: detection per eps, the psychometric fit, d′, response times and confidence, with the
catch-trial exclusions applied (or not) and shown; each figure with its numbers and a CSV download."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from backend.admin.deps import AdminDep, AdminRoute, render
from backend.admin.figures import GROUP_NAMES, Figure, Table, study_figures
from backend.admin.figures_people import (
    detection_by_people_figure,
    people_vs_models_figure,
    thresholds_by_person_figure,
)
from backend.admin.training import model_rows
from backend.api.deps import SessionDep
from backend.services.display import display_summary
from backend.services.errors import NotFoundError
from backend.services.results import StudyResults, study_results

router = APIRouter(route_class=AdminRoute)

IncludeExcluded = Annotated[bool, Query(description="Count the participants who fail the catch trials too.")]
Boot = Annotated[int, Query(ge=0, le=2000, description="Bootstrap resamples of the psychometric fit.")]


@dataclass(frozen=True)
class Fit:
    """A psychometric fit as the thresholds card shows it (`fit` None: `reason` says why there is none)."""

    label: str
    fit: dict[str, Any] | None
    reason: str | None


def results_and_figures(
    session: Session, study_id: int, *, include_excluded: bool, n_boot: int
) -> tuple[StudyResults, list[Figure], list[Figure], list[Fit]]:
    """The study's results (the service of GET /api/v1/studies/{id}/results), their figures (the trials view),
    the participant-level figures (with the models trained on the study's dataset) and the fits; a study whose
    trials mix masked and unmasked stimuli gets a fit per kind."""
    results = study_results(session, study_id, include_excluded=include_excluded, n_boot=n_boot)
    kinds = {bool(row["masked"]) for row in results.responses if row["eps"] > 0 and row["masked"] is not None}
    split = None
    if kinds == {False, True}:
        split = {
            kind: study_results(
                session,
                study_id,
                include_excluded=include_excluded,
                n_boot=n_boot,
                masked=kind,
                participant_level=False,
            )
            for kind in (False, True)
        }
    if split:
        fits = [Fit(GROUP_NAMES[kind], sub.psychometric, sub.psychometric_reason) for kind, sub in split.items()]
    else:
        fits = [Fit("all main-phase trials", results.psychometric, results.psychometric_reason)]
    sset = results.stimulus_set
    models = [m for m in model_rows(session) if sset is None or m.dataset_id in (None, sset.dataset_id)]
    people = [
        detection_by_people_figure(results),
        thresholds_by_person_figure(results),
        people_vs_models_figure(results, models, sset.attack if sset else None),
    ]
    return results, study_figures(results, split), people, fits


DISPLAY_COLUMNS = (
    "participant_index", "device_pixel_ratio", "px_per_mm", "viewing_distance_mm", "stimulus_width_px",
    "stimulus_width_deg", "stimulus_height_deg",
)  # fmt: skip


def display_table(session: Session, study_id: int) -> tuple[dict[str, Any], Table]:
    """The display card: per participant the calibrations and the mean stimulus size in degrees of visual angle
    (`backend.services.display`), with its medians."""
    summary = display_summary(session, study_id)
    rows = [[r[c] for c in DISPLAY_COLUMNS] for r in summary["rows"]]
    return summary, Table(list(DISPLAY_COLUMNS), rows, "Display per participant")


@router.get("/studies/{study_id}/results", name="admin_results")
def results_page(
    study_id: int,
    request: Request,
    admin: AdminDep,
    session: SessionDep,
    include_excluded: IncludeExcluded = False,
    n_boot: Boot = 200,
) -> Response:
    results, figures, people, fits = results_and_figures(
        session, study_id, include_excluded=include_excluded, n_boot=n_boot
    )
    display, display_rows = display_table(session, study_id)
    return render(
        request,
        admin,
        "results.html",
        {
            "display": display,
            "display_table": display_rows,
            "nav": "studies",
            "study": results.study,
            "results": results,
            "figures": figures,
            "people_figures": people,
            "fits": fits,
            "include_excluded": include_excluded,
            "n_boot": n_boot,
            "query": f"include_excluded={'true' if include_excluded else 'false'}&n_boot={n_boot}",
        },
    )


@router.get("/studies/{study_id}/results/{key}.csv", name="admin_results_csv")
def results_csv(
    study_id: int,
    key: str,
    admin: AdminDep,
    session: SessionDep,
    include_excluded: IncludeExcluded = False,
    n_boot: Boot = 200,
) -> Response:
    """The numbers of one figure (its first table) as CSV; `fit.csv` is the psychometric fit's table."""
    results, figures, people, _ = results_and_figures(
        session, study_id, include_excluded=include_excluded, n_boot=n_boot
    )
    tables = {f.key: f.tables[0] for f in figures + people}
    tables["fit"] = figures[0].tables[1]
    tables["display"] = display_table(session, study_id)[1]
    if key not in tables:
        raise NotFoundError(f"no figure {key!r}; the study's figures are {', '.join(sorted(tables))}")
    filename = f"{results.study.slug}-{key}{'-all' if include_excluded else ''}.csv"
    return Response(
        tables[key].csv(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
