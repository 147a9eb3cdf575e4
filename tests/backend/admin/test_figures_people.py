"""The participant-level figures on a simulated study: their tables carry the analysis's numbers, and the
people-vs-models figure reads each model's accuracy at the human eps50 by log-eps interpolation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backend.admin.comparison import ModelRow
from backend.admin.figures_people import (
    detection_by_people_figure,
    people_vs_models_figure,
    thresholds_by_person_figure,
)
from backend.services.results import StudyResults
from backend.study.analysis import eps_table
from backend.study.participants import participant_analysis
from tests.backend.simulated_people import LEVELS, rows_from_counts, simulate_counts


def _results() -> StudyResults:
    k, n = simulate_counts(np.random.default_rng(5), 1, 10, 20)
    rows = rows_from_counts(k[0], n[0], masked=False)
    return StudyResults(
        study=None,  # type: ignore[arg-type]  # the figures read only the numbers
        stimulus_set=None,
        exclusions_applied=True,
        max_catch_errors=1,
        n_participants=10,
        n_participants_included=10,
        n_main_responses=len(rows),
        excluded=[],
        eps=eps_table(rows),
        psychometric=None,
        psychometric_reason=None,
        responses=rows,
        participants=participant_analysis(rows, n_boot=50),
    )


def test_people_figures_tables_match_the_analysis():
    r = _results()
    assert r.participants is not None
    fig = detection_by_people_figure(r)
    assert fig.svg and fig.svg.count("trials view") >= 1
    table = {row[0]: dict(zip(fig.tables[0].columns, row, strict=True)) for row in fig.tables[0].rows}
    for level, wilson in zip(r.participants["levels"], r.eps, strict=True):
        got = table[level["eps"]]
        assert (got["ci_low"], got["ci_high"]) == tuple(level["ci"])
        assert (got["wilson_low"], got["wilson_high"]) == (wilson["ci_low"], wilson["ci_high"])
    persons = thresholds_by_person_figure(r)
    assert persons.svg and len(persons.tables[0].rows) == 10
    col = persons.tables[0].columns.index("all_eps50")
    assert [row[col] for row in persons.tables[0].rows] == [
        p["fits"]["all"]["eps50"] for p in r.participants["per_participant"]
    ]


def test_models_read_at_the_human_threshold():
    r = _results()
    assert r.participants is not None
    human50 = r.participants["thresholds"][0]["eps50"]
    e1, e2 = LEVELS[1], LEVELS[3]
    assert e1 < human50 < e2  # the simulated threshold lies inside the models' grid
    metrics = {"clean_acc": 0.9, "robust_acc": {"pgd": {str(e1): 0.6, str(e2): 0.2}, "apgd": {str(e1): 0.5}}}
    models = [
        ModelRow(1, "a", "sip_at", "resnet18", 0, 1, "done", metrics),
        ModelRow(2, "b", "pgd_at", "resnet18", 0, 1, "running", None),  # not evaluated yet: left out
    ]
    fig = people_vs_models_figure(r, models, "pgd")
    assert fig.svg and "people: 50 % notice" in fig.svg
    ((model_id, _, method, attack, h50, acc),) = fig.tables[0].rows
    assert (model_id, method, attack, h50) == (1, "sip_at", "pgd", human50)
    w = (math.log(human50) - math.log(e1)) / (math.log(e2) - math.log(e1))
    assert acc == pytest.approx(0.6 + w * (0.2 - 0.6))
    # no models: the people's curve alone; no participant data: no figure
    assert people_vs_models_figure(r, [], None).tables[0].rows == []
    r.participants = None
    assert people_vs_models_figure(r, models, "pgd").svg is None
