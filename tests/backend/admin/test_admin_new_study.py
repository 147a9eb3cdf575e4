"""The new-study form: defaults that fit the chosen stimulus set, and errors named by the form's labels."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import Study
from backend.storage import BlobStore
from tests.backend.factories import make_dataset, make_stimulus_set


def form(admin: TestClient, sset_id: int, slug: str, **fields: str) -> dict[str, str]:
    """The form as a browser sends it untouched: "Main trials" empty (its placeholder), the other defaults."""
    base = {"csrf_token": admin.csrf, "title": "T", "slug": slug, "stimulus_set_id": str(sset_id), "n_main": ""}
    return {**base, "n_practice": "2", "n_catch": "1", "n_annotate": "1", "seed": "0", "min_annotators": "1", **fields}


def test_main_trials_default_to_the_images_of_a_small_set(
    admin: TestClient, session: Session, storage: BlobStore
) -> None:
    sset = make_stimulus_set(session, storage, make_dataset(session, storage, n_images=7))
    session.commit()
    page = admin.get("/admin/studies").text
    assert "7 images)" in page and 'name="n_main"' in page and "at most the set" in page
    r = admin.post("/admin/studies", data=form(admin, sset.id, "small"), follow_redirects=False)
    assert r.status_code == 303, r.text
    study = session.scalar(select(Study).where(Study.slug == "small"))
    assert study.config["n_main"] == 7  # not the 40 of StudyConfig, which this set could not serve
    opened = admin.post(f"/admin/studies/{study.id}/open", data={"csrf_token": admin.csrf})
    assert opened.status_code == 200  # the defaults give a study that can open as it is


def test_too_many_main_trials_is_the_forms_error(admin: TestClient, session: Session, storage: BlobStore) -> None:
    sset = make_stimulus_set(session, storage, make_dataset(session, storage, n_images=5))
    session.commit()
    r = admin.post("/admin/studies", data=form(admin, sset.id, "big", n_main="9"))
    assert r.status_code == 422
    assert "Main trials: 9 is more than the 5 images of stimulus set" in r.text
    assert session.scalar(select(Study).where(Study.slug == "big")) is None
    ok = admin.post("/admin/studies", data=form(admin, sset.id, "fits", n_main="5"), follow_redirects=False)
    assert ok.status_code == 303


def test_errors_name_the_fields_as_the_form_labels_them(
    admin: TestClient, session: Session, storage: BlobStore
) -> None:
    sset = make_stimulus_set(session, storage, make_dataset(session, storage))
    session.commit()
    bad = {"n_practice": "-1", "stimulus_duration_ms": "20", "redirect_url": "ftp://x", "title": ""}
    r = admin.post("/admin/studies", data=form(admin, sset.id, "labels", **bad))
    assert r.status_code == 422
    for label in ("Practice trials:", "Stimulus shown for (ms):", "Redirect after the end:", "Title:"):
        assert label in r.text, label
    for internal in ("config.", "n_practice", "stimulus_duration_ms", "redirect_url:"):
        assert internal not in r.text.split("<form")[0], internal  # the message above the form
    r = admin.post("/admin/studies", data=form(admin, sset.id, "labels", n_annotate="two"))
    assert r.status_code == 422 and "Annotation trials: &#39;two&#39; is not a whole number" in r.text


def test_catch_trials_left_empty_follow_the_set(admin: TestClient, session: Session, storage: BlobStore) -> None:
    """The form no longer pre-fills 4 catch trials: empty, a set without catch stimuli gets none (it could not
    open with 4), one with them gets StudyConfig's 4."""
    from sqlalchemy import delete

    from backend.models import Stimulus

    with_catch = make_stimulus_set(session, storage, make_dataset(session, storage, n_images=6))
    without = make_stimulus_set(session, storage, make_dataset(session, storage, n_images=6))
    session.execute(delete(Stimulus).where(Stimulus.stimulus_set_id == without.id, Stimulus.role == "catch"))
    session.commit()
    page = admin.get("/admin/studies").text
    catch_input = re.search(r'<input id="f-catch"[^>]*>', page)
    assert catch_input is not None and 'value=""' in catch_input.group(0)
    for sset, slug, expected in ((without, "nocatch", 0), (with_catch, "catch", 4)):
        r = admin.post("/admin/studies", data=form(admin, sset.id, slug, n_catch=""), follow_redirects=False)
        assert r.status_code == 303, r.text
        assert session.scalar(select(Study).where(Study.slug == slug)).config["n_catch"] == expected
    opened = admin.post(
        f"/admin/studies/{session.scalar(select(Study.id).where(Study.slug == 'nocatch'))}/open",
        data={"csrf_token": admin.csrf},
    )
    assert opened.status_code == 200


def test_the_design_settings_from_the_form(admin: TestClient, session: Session, storage: BlobStore) -> None:
    sset = make_stimulus_set(session, storage, make_dataset(session, storage, n_images=6))
    session.commit()
    fields = {
        "stimulus_duration_ms": "300",
        "mask_ms": "100",
        "iti_ms": "800",
        "require_fullscreen": "1",
        "card_calibration": "1",
        "target_participants": "30",
    }
    r = admin.post("/admin/studies", data=form(admin, sset.id, "design", **fields), follow_redirects=False)
    assert r.status_code == 303, r.text
    config = session.scalar(select(Study).where(Study.slug == "design")).config
    assert {k: config[k] for k in ("mask_ms", "iti_ms", "require_fullscreen", "card_calibration")} == {
        "mask_ms": 100,
        "iti_ms": 800,
        "require_fullscreen": True,
        "card_calibration": True,
    }
    assert config["target_participants"] == 30
    bad = admin.post("/admin/studies", data=form(admin, sset.id, "nomask", mask_ms="100"))
    assert bad.status_code == 422 and "mask_ms needs stimulus_duration_ms" in bad.text


def test_a_study_of_two_sets_from_the_form(admin: TestClient, session: Session, storage: BlobStore) -> None:
    dataset = make_dataset(session, storage)
    first, second = make_stimulus_set(session, storage, dataset), make_stimulus_set(session, storage, dataset)
    session.commit()
    assert 'name="compare_stimulus_set_ids"' in admin.get("/admin/studies").text
    r = admin.post("/admin/studies", data=form(admin, first.id, "two", compare_stimulus_set_ids="x, 3"))
    assert r.status_code == 422 and "Compared with sets: &#39;x, 3&#39; is not a list of set ids" in r.text
    r = admin.post(
        "/admin/studies",
        data=form(admin, first.id, "two", compare_stimulus_set_ids=f" {second.id} "),
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    study = session.scalar(select(Study).where(Study.slug == "two"))
    assert study.config["compare_stimulus_set_ids"] == [second.id]
    assert f'value="{second.id}"' in admin.get(f"/admin/studies/{study.id}").text
    one = admin.post("/admin/studies", data=form(admin, first.id, "one"), follow_redirects=False)
    assert one.status_code == 303
    assert session.scalar(select(Study).where(Study.slug == "one")).config["compare_stimulus_set_ids"] == []


def test_viewing_distance_and_mturk_from_the_form(admin: TestClient, session: Session, storage: BlobStore) -> None:
    sset = make_stimulus_set(session, storage, make_dataset(session, storage, n_images=6))
    session.commit()
    page = admin.get("/admin/studies").text
    assert 'name="viewing_distance"' in page and 'name="mturk"' in page
    fields = {"card_calibration": "1", "viewing_distance": "1", "mturk": "1", "completion_code": "DONE7"}
    r = admin.post("/admin/studies", data=form(admin, sset.id, "hit", **fields), follow_redirects=False)
    assert r.status_code == 303, r.text
    config = session.scalar(select(Study).where(Study.slug == "hit")).config
    assert (config["viewing_distance"], config["mturk"], config["card_calibration"]) == (True, True, True)
    alone = admin.post("/admin/studies", data=form(admin, sset.id, "nocard", viewing_distance="1"))
    assert alone.status_code == 422 and "viewing_distance needs card_calibration" in alone.text
    both = admin.post(
        "/admin/studies", data=form(admin, sset.id, "both", mturk="1", prolific="1", completion_code="C1")
    )
    assert both.status_code == 422 and "with mturk set, leave prolific false" in both.text
