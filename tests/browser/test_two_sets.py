"""A study of two stimulus sets (the same images, unmasked and masked) completed in Chromium: the participant's
main trials come from both sets, interleaved and one trial per (set, eps), every answer is stored against its
set, and the results compare the two sets."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from backend.models import Stimulus, StimulusSet, Trial
from backend.services.results import study_results
from tests.browser import seed
from tests.browser.driver import PageWatch, answer_until, stored, wait_screen

pytestmark = pytest.mark.browser


def test_a_participant_completes_a_two_set_study(server: Any, slug: str, browser: Any, shots: Any) -> None:
    with server.session() as s:
        study = seed.make_study(
            s, server.storage, slug=slug, n_main=6, n_annotate=0, compare_set_names=["browser set, masked"]
        )
        study_id = study.id
        set_ids = [study.config["stimulus_set_id"], *study.config["compare_stimulus_set_ids"]]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        watch = PageWatch().attach(page)
        page.goto(f"{server.url}/s/{slug}?PROLIFIC_PID=pid-two&STUDY_ID=st&SESSION_ID=se")
        answer_until(page, lambda name, _: name == "done")
        shots(page, "done")
        assert wait_screen(page, "done") == "done"
        assert not watch.errors, watch.errors
    finally:
        context.close()

    data = stored(server, "pid-two")
    assert data["participant"]["completed"]
    main_ids = [trial_id for trial_id, _, phase in data["trials"] if phase == "main"]
    assert len(main_ids) == 6 and all(trial_id in data["responses"] for trial_id in main_ids)
    with server.session() as s:
        rows = s.execute(
            select(Trial.position, Stimulus.stimulus_set_id, Stimulus.eps, Stimulus.image_id, StimulusSet.masked)
            .join(Stimulus, Stimulus.id == Trial.stimulus_id)
            .join(StimulusSet, StimulusSet.id == Stimulus.stimulus_set_id)
            .where(Trial.id.in_(main_ids))
            .order_by(Trial.position)
        ).all()
        results = study_results(s, study_id, n_boot=20)
    assert Counter((r.stimulus_set_id, round(r.eps * 255)) for r in rows) == {
        (set_id, e): 1 for set_id in set_ids for e in (0, 8, 32)
    }
    assert len({r.image_id for r in rows}) == 6  # no image in both sets
    assert {r.masked for r in rows if r.stimulus_set_id == set_ids[1]} == {True}
    assert results.sets is not None
    assert [(b["stimulus_set_id"], b["n_trials"]) for b in results.sets["sets"]] == [(i, 3) for i in set_ids]
