"""The dashboard's study form sets the Prolific codes; a Prolific study without its completion code is refused."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import Study
from backend.storage import BlobStore
from tests.backend.factories import make_dataset, make_stimulus_set


def test_prolific_fields_of_the_study_form(admin: TestClient, session: Session, storage: BlobStore) -> None:
    sset = make_stimulus_set(session, storage, make_dataset(session, storage))
    session.commit()
    form = {
        "csrf_token": admin.csrf,  # type: ignore[attr-defined]
        "title": "On Prolific",
        "slug": "on-prolific",
        "stimulus_set_id": str(sset.id),
        "n_main": "4",
        "n_practice": "2",
        "n_catch": "1",
        "n_annotate": "1",
        "prolific": "1",
        "completion_code": "",
        "declined_code": "NOCONSENT",
        "failed_attention_code": "FAILED",
    }
    refused = admin.post("/admin/studies", data=form)
    assert refused.status_code == 422 and "needs a fixed completion_code" in refused.text
    r = admin.post("/admin/studies", data={**form, "completion_code": "C0DE"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    study = session.scalar(select(Study).where(Study.slug == "on-prolific"))
    assert study is not None
    assert {k: study.config[k] for k in ("prolific", "completion_code", "declined_code", "failed_attention_code")} == {
        "prolific": True,
        "completion_code": "C0DE",
        "declined_code": "NOCONSENT",
        "failed_attention_code": "FAILED",
    }
    page = admin.get(r.headers["location"]).text
    assert 'id="f-prolific"' in page and "checked" in page.split('id="f-prolific"')[1].split(">")[0]
    assert 'value="NOCONSENT"' in page
    # Unticked and the codes cleared: back to a plain study.
    edit = {**form, "completion_code": "C0DE", "declined_code": "", "failed_attention_code": ""}
    del edit["prolific"]
    r = admin.post(f"/admin/studies/{study.id}", data=edit, follow_redirects=False)
    assert r.status_code == 303, r.text
    session.expire_all()
    assert study.config["prolific"] is False and study.config["declined_code"] is None
    assert study.config["failed_attention_code"] is None
