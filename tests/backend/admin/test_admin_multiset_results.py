"""The results page of a study of two stimulus sets: a row per set and eps, the thresholds per set, and the
paired difference; a study of one set shows no such card."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from backend.storage import BlobStore
from tests.backend.factories import EPS_LEVELS, make_dataset, make_open_study, make_stimulus_set, make_study
from tests.backend.research_factories import add_participant, answer_trials


def test_results_page_shows_the_sets_side_by_side(admin: TestClient, session: Session, storage: BlobStore) -> None:
    dataset = make_dataset(session, storage)
    a = make_stimulus_set(session, storage, dataset)
    b = make_stimulus_set(session, storage, dataset)
    a.name, b.name, b.masked = "plain", "spared", True
    study = make_study(session, a, compare_stimulus_set_ids=[b.id])
    x, y = EPS_LEVELS[1:]
    for k in range(6):
        person = add_participant(session, study, k)
        for sset, hits in ((a, {0.0: 1, x: 3, y: 6}), (b, {0.0: 1, x: 1, y: 3 + k % 2})):
            answers = [("main", e, "perturbed" if j < hits[e] else "clean") for e in hits for j in range(6)]
            answer_trials(session, person, sset.id, answers)
    session.commit()

    page = admin.get(f"/admin/studies/{study.id}/results?n_boot=30")
    assert page.status_code == 200, page.text
    html = page.text
    assert 'id="set-comparison"' in html and "Stimulus sets side by side" in html
    level_rows = re.findall(r'<tr data-set="(\d+)" data-eps="([0-9.e-]+)">(.*?)</tr>', html, re.S)
    assert [(int(s), float(e)) for s, e, _ in level_rows] == [(i, e) for i in (a.id, b.id) for e in EPS_LEVELS]
    by_key = {(int(s), float(e)): cells for s, e, cells in level_rows}
    assert "<td>plain</td>" in by_key[(a.id, y)] and ">1.000<" in by_key[(a.id, y)]  # 36 of 36 detected
    assert "<td>spared</td>" in by_key[(b.id, y)] and ">0.583<" in by_key[(b.id, y)]  # 21 of 36
    thresholds = re.search(r'<table class="data compact" id="set-thresholds">(.*?)</table>', html, re.S).group(1)
    assert f'data-set="{a.id}"' in thresholds and f'data-set="{b.id}"' in thresholds and ">masked<" in thresholds
    assert f'data-difference="{b.id}"' in thresholds and "spared − plain" in thresholds

    single = make_open_study(session, storage, slug="single")
    assert 'id="set-comparison"' not in admin.get(f"/admin/studies/{single.id}/results?n_boot=0").text
