"""The study page's per-image view of the newest ranking (human mean, predicted map, uncertainty), the curve of
the predictor's held-out quality over the study's rankings, how the study chooses images now, and the painting
settings on the form (issue 20)."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import Image, Job
from backend.storage import BlobStore
from tests.backend.admin.admin_factories import Seeded


def _png(level: int) -> bytes:
    out = io.BytesIO()
    PILImage.fromarray(np.full((6, 8), level, dtype=np.uint8), "L").save(out, format="PNG")
    return out.getvalue()


def _job(session: Session, study_id: int, result: dict, status: str = "succeeded") -> Job:
    job = Job(kind="rank_paintings", params={"study_id": study_id}, status=status, result=result)
    session.add(job)
    session.commit()
    return job


def _held(paintings: int, cc: float) -> dict:
    return {"paintings": paintings, "images": paintings, "held_out": 2, "cc": cc, "sim": cc / 2, "nss": 1.5}


def test_the_study_page_shows_each_ranked_images_maps_and_the_quality_curve(
    admin: TestClient, session: Session, storage: BlobStore, seeded: Callable[..., Seeded]
) -> None:
    s = seeded()
    page = admin.get(f"/admin/studies/{s.study.id}").text
    assert "No ranking with a held-out score yet" in page and "<svg" not in page.split('id="paint-next"')[1]
    assert "random: each participant paints a seeded sample" in page

    _job(session, s.study.id, {"ranking": [], "heldout": _held(10, 0.41)})
    _job(session, s.study.id, {"ranking": [], "heldout": {**_held(4, 0.0), "cc": None}})  # too few to hold out
    shas = {name: storage.put(_png(level)) for name, level in (("pred", 200), ("unc", 90), ("human", 255))}
    ranking = [
        {"image_id": 901, "label": "c0", "score": 0.9, "spread": 0.1, "disagreement": 0.5, "paintings": 1,
         "predicted_sha256": shas["pred"], "uncertainty_sha256": shas["unc"], "human_sha256": shas["human"]},
        {"image_id": 902, "label": "c1", "score": 0.5, "spread": 0.1, "disagreement": 0.5, "paintings": 0,
         "predicted_sha256": shas["pred"], "uncertainty_sha256": shas["unc"], "human_sha256": None},
    ]  # fmt: skip
    result = {"painted": 30, "candidates": 2, "n_train": 32, "min_annotators": 1, "ranking": ranking}
    newest = _job(session, s.study.id, {**result, "heldout": _held(30, 0.73)})
    s.study.config = {**s.study.config, "painting_pool": "active"}
    session.commit()

    page = admin.get(f"/admin/studies/{s.study.id}").text
    card = page.split('id="paint-next"')[1].split("</section>")[0]
    for name in ("pred", "unc", "human"):
        assert f'src="/admin/jobs/{newest.id}/maps/{shas[name]}.png"' in card
    assert 'alt="human mean of image 901"' in card and 'alt="human mean of image 902"' not in card
    assert 'alt="uncertainty of image 902"' in card and 'alt="predicted map of image 902"' in card
    row_902 = card.split('alt="image 902"')[1].split("</tr>")[0]
    assert re.search(r"<td>—</td>", row_902)  # no human mean: nobody painted it yet
    assert f"active: the ranking of job {newest.id}" in card  # the study follows this ranking now
    # the curve: one point per ranking with a held-out score (the one without is left out), oldest first
    assert "<svg" in card and "Salience predictor on held-out paintings" in card
    assert "paintings the predictor learnt from" in card
    numbers = card.split("Numbers behind the figure")[1]
    assert numbers.index("0.41") < numbers.index("0.73") and numbers.count("<tr>") == 3  # header + 2 points

    r = admin.get(f"/admin/jobs/{newest.id}/maps/{shas['unc']}.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content == _png(90)
    image_sha = session.scalar(select(Image.sha256))  # a blob the job does not name: not served here
    assert admin.get(f"/admin/jobs/{newest.id}/maps/{image_sha}.png").status_code == 404
    assert admin.get(f"/admin/jobs/{newest.id - 1}/maps/{shas['unc']}.png").status_code == 404


def test_the_painting_settings_on_the_form_are_checked(
    admin: TestClient, session: Session, seeded: Callable[..., Seeded]
) -> None:
    s = seeded()
    url = f"/admin/studies/{s.study.id}"
    page = admin.get(url).text
    assert 'name="painting_pool"' in page and 'name="rerank_every"' in page
    base = {"csrf_token": admin.csrf, "title": "t"}
    r = admin.post(url, data={**base, "painting_pool": "sometimes"})
    assert r.status_code == 422 and "Choice of images to paint" in r.text
    r = admin.post(url, data={**base, "rerank_every": "0"})
    assert r.status_code == 422 and "Re-rank after paintings" in r.text
    r = admin.post(url, data={**base, "painting_pool": "active", "rerank_every": "25"}, follow_redirects=False)
    assert r.status_code == 303
    session.refresh(s.study)
    assert (s.study.config["painting_pool"], s.study.config["rerank_every"]) == ("active", 25)
    r = admin.post(url, data={**base, "rerank_every": ""}, follow_redirects=False)
    session.refresh(s.study)
    assert r.status_code == 303 and s.study.config["rerank_every"] is None
