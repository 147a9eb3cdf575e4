"""Every dashboard page renders with seeded data and shows its numbers; the forms act through the services."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from backend.models import (
    Annotation,
    Dataset,
    Image,
    Job,
    Participant,
    Response,
    SalienceMap,
    Stimulus,
    StimulusSet,
    Study,
    TrainedModel,
    Trial,
)
from backend.services.maskstats import rle_decode
from backend.storage import BlobStore
from backend.study.analysis import dprime, wilson_interval
from tests.backend.admin.admin_factories import Enqueued, Seeded
from tests.backend.factories import EPS_LEVELS, make_dataset, make_open_study, make_stimulus_set
from tests.backend.research_factories import answer_trials, zip_bytes

E2, E8 = EPS_LEVELS[1], EPS_LEVELS[2]


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _png_array(data: bytes) -> np.ndarray:
    with PILImage.open(io.BytesIO(data)) as img:
        return np.asarray(img)


def test_every_page_renders(admin: TestClient, seeded) -> None:
    s: Seeded = seeded()
    sid, sset = s.study.id, s.study.config["stimulus_set_id"]
    pages = [
        "/admin",
        "/admin/datasets",
        "/admin/datasets/1",
        "/admin/stimulus-sets",
        f"/admin/stimulus-sets/{sset}",
        "/admin/studies",
        f"/admin/studies/{sid}",
        f"/admin/studies/{sid}/results?n_boot=20",
        f"/admin/studies/{sid}/annotations",
        "/admin/training",
        f"/admin/studies/{sid}/participants/{s.participants[0].id}/withdraw",
    ]
    for path in pages:
        r = admin.get(path)
        assert r.status_code == 200, (path, r.text[:2000])
        assert '<script type="module" src="/static/admin/admin.js">' in r.text
        assert "style=" not in r.text and "<script>" not in r.text  # nothing inline: the CSP would refuse it
        assert "script-src 'self'" in r.headers["content-security-policy"]
    for path in ("/admin/studies/999", "/admin/stimulus-sets/999", "/admin/jobs/999"):
        r = admin.get(path)
        assert r.status_code == 404 and "Not found" in r.text and "text/html" in r.headers["content-type"]


def test_overview_shows_progress_and_live_job_states(admin: TestClient, seeded, session: Session) -> None:
    seeded()
    job = Job(kind="train", params={}, status="running", progress=0.25, message="epoch 1/4", eta_s=30)
    session.add(job)
    session.commit()
    page = admin.get("/admin").text
    row = page[page.index("Study pilot") :]
    assert [int(n) for n in _cells(row)[:3]] == [3, 0, 1]  # started, completed, flagged
    assert f'data-job-id="{job.id}"' in page and "epoch 1/4" in page
    states = admin.get(f"/admin/jobs/progress.json?ids={job.id},999,x").json()["jobs"]
    assert states == [
        {
            "id": job.id,
            "kind": "train",
            "status": "running",
            "progress": 0.25,
            "message": "epoch 1/4",
            "eta_s": 30.0,
            "error": None,
            "finished": False,
        }
    ]


def _cells(html: str) -> list[str]:
    return re.findall(r'<td class="num">(\d+)</td>', html)


def test_results_numbers_follow_the_exclusions(admin: TestClient, seeded) -> None:
    s = seeded()
    page = admin.get(f"/admin/studies/{s.study.id}/results?n_boot=20")
    assert page.status_code == 200
    assert "1 participant is excluded by the rules" in page.text and "pid2" in page.text
    # 4 figures of the trials view, 3 of the participant level (rates, per person, people vs models)
    assert page.text.count("<svg") == 7 and page.text.count("<details") >= 7
    assert 'id="participant-level"' in page.text and "few participants" in page.text
    people = _csv(admin.get(f"/admin/studies/{s.study.id}/results/people.csv?n_boot=20").text)
    eight = next(r for r in people if round(float(r["eps"]) * 255) == 8)
    assert float(eight["detection_rate"]) == 1.0
    assert float(eight["wilson_low"]) == pytest.approx(wilson_interval(3, 3)[0])
    assert float(eight["ci_low"]) == float(eight["ci_high"]) == 1.0  # every resample of people says 3/3
    persons = _csv(admin.get(f"/admin/studies/{s.study.id}/results/participants.csv?n_boot=20").text)
    assert sorted(int(r["participant_id"]) for r in persons) == sorted(p.id for p in s.participants[:2])
    assert sum(int(r["n_trials"]) for r in persons) == 8
    rows = _csv(admin.get(f"/admin/studies/{s.study.id}/results/detection.csv?n_boot=20").text)
    got = {(round(float(r["eps"]) * 255), r["masked"]): (int(r["n"]), int(r["n_judged_perturbed"])) for r in rows}
    assert got == {(0, ""): (2, 1), (2, "False"): (3, 1), (8, "False"): (3, 3)}
    eight = next(r for r in rows if round(float(r["eps"]) * 255) == 8)
    assert float(eight["ci_low"]) == pytest.approx(wilson_interval(3, 3)[0])
    assert float(eight["dprime"]) == pytest.approx(dprime(3, 0, 1, 1))
    assert float(eight["false_alarm_rate"]) == 0.5
    # With everyone counted the flagged participant's answers come in.
    rows = _csv(admin.get(f"/admin/studies/{s.study.id}/results/detection.csv?include_excluded=true&n_boot=0").text)
    assert [(int(r["n"]), int(r["n_judged_perturbed"])) for r in rows] == [(4, 1), (4, 1), (4, 3)]
    fit = _csv(admin.get(f"/admin/studies/{s.study.id}/results/fit.csv?n_boot=20").text)
    assert {r["parameter"] for r in fit} >= {"eps50", "eps75", "alpha", "beta"}
    rt = _csv(admin.get(f"/admin/studies/{s.study.id}/results/rt.csv?n_boot=0").text)
    assert sum(int(r["clean"]) for r in rt) == 2 and sum(int(r["perturbed, unmasked (whole image)"]) for r in rt) == 6
    confidence = _csv(admin.get(f"/admin/studies/{s.study.id}/results/confidence.csv?n_boot=0").text)
    assert [int(r["clean"]) for r in confidence] == [1, 1, 0, 0]  # p0 answers with confidence 1, p1 with 2
    assert admin.get(f"/admin/studies/{s.study.id}/results/nope.csv").status_code == 404


def test_annotation_agreement_and_export(admin: TestClient, seeded, storage: BlobStore) -> None:
    s = seeded()
    page = admin.get(f"/admin/studies/{s.study.id}/annotations").text
    assert 'class="iou">0.500<' in page  # the two kept masks: 12 shared pixels of 24
    assert "mean pairwise IoU 0.500" in page and "flagged" in page
    rows = _csv(admin.get(f"/admin/studies/{s.study.id}/annotations/agreement.csv").text)
    assert rows == [
        {
            "image_id": str(s.annotations[0].trial.stimulus.image_id),
            "filename": rows[0]["filename"],
            "label": rows[0]["label"],
            "annotations": "3",
            "annotators_kept": "2",
            "mean_pairwise_iou": "0.5",
            "mean_duration_s": "4.0",
        }
    ]
    r = admin.get(f"/admin/studies/{s.study.id}/annotations.zip")
    assert r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        names = set(zf.namelist())
        coco = json.loads(zf.read("annotations.json"))
        mean = _png_array(zf.read(next(n for n in names if n.startswith("mean/"))))
    assert {f"masks/{a.id}.png" for a in s.annotations} <= names and "README.txt" in names
    assert len(coco["images"]) == 1 and len(coco["annotations"]) == 3
    first = next(a for a in coco["annotations"] if a["id"] == s.annotations[0].id)
    stored = _png_array(storage.get(s.annotations[0].mask_sha256)) > 127
    np.testing.assert_array_equal(rle_decode(first["segmentation"]), stored)
    assert first["area"] == 24 and first["bbox"] == [0.0, 0.0, 4.0, 6.0] and first["iscrowd"] == 0
    assert [a["flagged"] for a in coco["annotations"]] == [False, False, True]
    # The mean of the two kept masks: columns 0-1 painted by one of two, 2-3 by both, 4-7 by nobody.
    np.testing.assert_array_equal(mean[0], [128, 128, 255, 255, 0, 0, 0, 0])
    overlay = admin.get(f"/admin/studies/{s.study.id}/images/{first['image_id']}/mean.png?overlay=false")
    np.testing.assert_array_equal(_png_array(overlay.content)[0], [128, 128, 255, 255, 0, 0, 0, 0])


def test_perturbation_png_is_the_difference_scaled_to_full_range(admin: TestClient, seeded, session: Session) -> None:
    s = seeded()
    sset_id = s.study.config["stimulus_set_id"]
    stim = session.scalars(select(Stimulus).where(Stimulus.stimulus_set_id == sset_id, Stimulus.eps == E8)).first()
    clean = session.scalar(
        select(Stimulus).where(
            Stimulus.stimulus_set_id == sset_id, Stimulus.image_id == stim.image_id, Stimulus.eps == 0
        )
    )
    page = admin.get(f"/admin/stimulus-sets/{sset_id}?eps={E8}").text
    assert f"/admin/stimuli/{stim.id}/perturbation.png" in page and f"/admin/stimuli/{clean.id}/file" in page
    r = admin.get(f"/admin/stimuli/{stim.id}/perturbation.png")
    x = _png_array(admin.get(f"/admin/stimuli/{clean.id}/file").content).astype(int)
    x_adv = _png_array(admin.get(f"/admin/stimuli/{stim.id}/file").content).astype(int)
    diff = np.abs(x_adv - x)
    assert float(r.headers["x-linf"]) == pytest.approx(diff.max() / 255, abs=1e-6)
    np.testing.assert_allclose(_png_array(r.content), np.rint(diff / diff.max() * 255), atol=1)
    assert admin.get(f"/admin/stimuli/{clean.id}/perturbation.png").status_code == 200  # clean vs itself: black


def test_dataset_page_overlays_each_salience_source(
    admin: TestClient, seeded, session: Session, storage: BlobStore
) -> None:
    s = seeded()
    image_id = s.annotations[0].trial.stimulus.image_id
    gray = io.BytesIO()
    PILImage.new("L", (4, 3), 255).save(gray, format="PNG")  # smaller than the image: resized for the overlay
    session.add(SalienceMap(image_id=image_id, source="imported", sha256=storage.put(gray.getvalue())))
    session.commit()
    page = admin.get("/admin/datasets/1").text
    assert f"/admin/images/{image_id}/overlay.png?source=annotations" in page
    assert f"/admin/images/{image_id}/overlay.png?source=imported" in page
    for source in ("annotations", "imported"):
        r = admin.get(f"/admin/images/{image_id}/overlay.png?source={source}")
        assert r.status_code == 200 and _png_array(r.content).shape == (6, 8, 3)
    assert admin.get(f"/admin/images/{image_id}/overlay.png?source=gradcam").status_code == 404


def test_upload_a_dataset_through_the_form(admin: TestClient, session: Session) -> None:
    from tests.backend.factories import png_bytes

    archive = zip_bytes({"cat/a.png": png_bytes(seed=1), "dog/b.png": png_bytes(seed=2)})
    url = f"/admin/datasets?csrf_token={admin.csrf}"
    r = admin.post(url, files={"file": ("pets.zip", archive)}, data={"name": "Pets"}, follow_redirects=False)
    assert r.status_code == 303
    dataset = session.scalar(select(Dataset).where(Dataset.name == "Pets"))
    assert r.headers["location"] == f"/admin/datasets/{dataset.id}?notice=uploaded"
    assert "The dataset was imported" in admin.get(r.headers["location"]).text
    again = admin.post(url, files={"file": ("pets.zip", archive)}, follow_redirects=False)
    assert again.headers["location"].endswith("?notice=existing")
    bad = admin.post(url, files={"file": ("x.zip", b"not a zip")})
    assert bad.status_code == 422 and "the archive was refused" in bad.text
    assert session.scalar(select(func.count(Dataset.id))) == 1


def test_create_a_stimulus_set_queues_its_job(
    admin: TestClient, session: Session, storage: BlobStore, enqueued: Enqueued
) -> None:
    dataset = make_dataset(session, storage)
    model = TrainedModel(name="m", arch="small_cnn", method="standard", dataset_id=dataset.id)
    session.add(model)
    session.commit()
    form = {
        "csrf_token": admin.csrf,
        "name": "graded",
        "dataset_id": str(dataset.id),
        "model": f"model:{model.id}",
        "attack": "pgd",
        "norm": "linf",
        "eps_levels": "2/255, 8/255 0.05",
        "masked": "on",
        "steps": "5",
        "split": "test",
        "n_images": "4",
        "seed": "3",
        "salience_source": "",
        "catch": "on",
    }
    r = admin.post("/admin/stimulus-sets", data=form, follow_redirects=False)
    assert r.status_code == 303
    sset = session.scalar(select(StimulusSet).where(StimulusSet.name == "graded"))
    assert r.headers["location"] == f"/admin/stimulus-sets/{sset.id}"
    assert sset.eps_levels == pytest.approx(sorted([0, 2 / 255, 8 / 255, 0.05]))
    assert sset.masked and sset.steps == 5 and sset.params["n_images"] == 4 and sset.params["seed"] == 3
    assert enqueued.sent == [sset.job_id]
    page = admin.get(r.headers["location"]).text
    assert f'data-job-id="{sset.job_id}"' in page and "queued" in page
    bad = admin.post("/admin/stimulus-sets", data={**form, "eps_levels": "2/0, x"})
    assert bad.status_code == 422 and "eps levels" in bad.text
    too_many = admin.post("/admin/stimulus-sets", data={**form, "n_images": "99"})
    assert too_many.status_code == 422 and "n_images" in too_many.text
    assert 'value="graded"' in too_many.text  # the form keeps what was typed
    assert session.scalar(select(func.count(StimulusSet.id))) == 1
    assert '<option value="square"' in too_many.text and '<option value="apgd-t"' not in too_many.text


def test_create_edit_open_and_close_a_study(admin: TestClient, session: Session, storage: BlobStore) -> None:
    sset = make_stimulus_set(session, storage, make_dataset(session, storage))
    session.commit()
    form = {
        "csrf_token": admin.csrf,
        "title": "Detecting noise",
        "slug": "noise-1",
        "stimulus_set_id": str(sset.id),
        "n_main": "4",
        "n_practice": "2",
        "n_catch": "1",
        "n_annotate": "1",
        "seed": "7",
        "stimulus_duration_ms": "",
        "min_annotators": "2",
        "completion_code": "",
        "redirect_url": "",
        "consent_text": "",
        "instructions": "",
    }
    r = admin.post("/admin/studies", data=form, follow_redirects=False)
    assert r.status_code == 303
    study = session.scalar(select(Study).where(Study.slug == "noise-1"))
    assert study.status == "draft" and study.config["seed"] == 7 and study.config["min_annotators"] == 2
    assert study.config["consent_text"].startswith("You are invited")  # empty: the default text
    assert study.config["annotation_split"] == "train"  # not in the form: paint the training images
    page = admin.get(r.headers["location"]).text
    assert 'id="f-annotation-split"' in page and 'value="train"' in page
    assert "http://localhost:8000/s/noise-1" in page
    assert (
        "http://localhost:8000/s/noise-1?PROLIFIC_PID={{%PROLIFIC_PID%}}&amp;STUDY_ID={{%STUDY_ID%}}"
        "&amp;SESSION_ID={{%SESSION_ID%}}" in page
    )
    taken = admin.post("/admin/studies", data=form)
    assert taken.status_code == 409 and "is taken" in taken.text
    bad = admin.post("/admin/studies", data={**form, "slug": "Bad Slug", "n_main": "0"})
    assert bad.status_code == 422 and "Address" in bad.text and "Main trials" in bad.text  # the form's labels
    assert "config.n_main" not in bad.text

    edit = {**form, "title": "Detecting noise, v2", "n_main": "5", "redirect_url": "https://example.org/done"}
    r = admin.post(f"/admin/studies/{study.id}", data=edit, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("?notice=saved")
    session.expire_all()
    assert study.title == "Detecting noise, v2" and study.config["n_main"] == 5
    assert study.config["redirect_url"] == "https://example.org/done"
    cleared = admin.post(f"/admin/studies/{study.id}", data={**edit, "redirect_url": ""}, follow_redirects=False)
    assert cleared.status_code == 303
    session.expire_all()
    assert study.config["redirect_url"] is None
    bad = admin.post(f"/admin/studies/{study.id}", data={**edit, "redirect_url": "ftp://x"})
    assert bad.status_code == 422 and "redirect_url" in bad.text

    assert admin.post(f"/admin/studies/{study.id}/open", data={"csrf_token": admin.csrf}).status_code == 200
    session.expire_all()
    assert study.status == "open"
    admin.post(f"/admin/studies/{study.id}/close", data={"csrf_token": admin.csrf})
    session.expire_all()
    assert study.status == "closed"


def test_schedule_fields_are_frozen_once_participants_started(admin: TestClient, seeded) -> None:
    s = seeded()
    page = admin.get(f"/admin/studies/{s.study.id}").text
    assert 'name="n_main" disabled' in page
    r = admin.post(f"/admin/studies/{s.study.id}", data={"csrf_token": admin.csrf, "title": "t", "n_main": "6"})
    assert r.status_code == 409 and "cannot change" in r.text


def test_open_refuses_a_study_that_cannot_run(admin: TestClient, session: Session, storage: BlobStore) -> None:
    study = make_open_study(session, storage, n_main=50)
    study.status = "draft"
    session.commit()
    page = admin.get(f"/admin/studies/{study.id}").text
    assert "Before it can open" in page
    r = admin.post(f"/admin/studies/{study.id}/open", data={"csrf_token": admin.csrf})
    assert r.status_code == 409 and "cannot open" in r.text


def test_withdrawal_asks_first_then_deletes(admin: TestClient, seeded, session: Session, storage: BlobStore) -> None:
    s = seeded()
    pid = s.participants[2].id
    mask = s.annotations[2].mask_sha256
    page = admin.get(f"/admin/studies/{s.study.id}/participants/{pid}/withdraw").text
    assert "7 trials, 6 responses, 1 painted mask" in page
    r = admin.post(
        f"/admin/studies/{s.study.id}/participants/{pid}/withdraw",
        data={"csrf_token": admin.csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].endswith("?notice=withdrawn")
    session.expire_all()
    assert session.get(Participant, pid) is None
    assert session.scalar(select(func.count(Annotation.id))) == 2
    assert session.scalar(select(func.count(Response.id))) == 12
    assert not storage.exists(mask)
    assert "data were deleted" in admin.get(r.headers["location"]).text
    assert admin.get(f"/admin/studies/{s.study.id}/participants/{pid}/withdraw").status_code == 404


def test_admin_exports_stream_the_study_data(admin: TestClient, seeded) -> None:
    s = seeded()
    r = admin.get(f"/admin/studies/{s.study.id}/export/responses.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert len(_csv(r.text)) == 3 * 6
    assert len(admin.get(f"/admin/studies/{s.study.id}/export/participants.json").json()) == 3


def test_queue_training_and_compare_models(admin: TestClient, seeded, session: Session, enqueued: Enqueued) -> None:
    s = seeded()
    form = {
        "csrf_token": admin.csrf,
        "dataset_id": "1",
        "method": "sip_at",
        "arch": "auto",
        "epochs": "2",
        "eps_ramp_epochs": "1",  # shorter than the run, or the job is refused
        "eps": "4/255",
        "alpha": "1/255",
        "steps": "3",
        "seed": "5",
        "salience": "annotations",
        "study_id": str(s.study.id),
        "fallback": "none",
        "eval_eps": "0, 2/255, 4/255",
        "eval_steps": "2",
        "batch_size": "8",
        "lr": "0.05",
        "name": "",
    }
    # The study painted a test image only: no training image has a human map, so nothing is queued.
    before = admin.get(f"/admin/training?study_id={s.study.id}").text
    assert "<strong>0 of 0</strong> training images have a human map" in before and "is refused until" in before
    refused = admin.post("/admin/training", data=form, follow_redirects=False)
    assert refused.status_code == 422 and "no training image of dataset 1 has a human map" in refused.text
    assert session.scalar(select(Job).where(Job.kind == "train")) is None
    painted = session.scalar(
        select(Stimulus.image_id).join(Trial, Trial.stimulus_id == Stimulus.id).where(Trial.phase == "annotate")
    )
    session.execute(update(Image).where(Image.id == painted).values(split="train"))
    session.commit()
    after = admin.get(f"/admin/training?study_id={s.study.id}").text
    assert "<strong>1 of 1</strong> training images have a human map" in after
    r = admin.post("/admin/training", data=form, follow_redirects=False)
    assert r.status_code == 303
    job = session.scalar(select(Job).where(Job.kind == "train"))
    assert r.headers["location"] == f"/admin/jobs/{job.id}" and enqueued.sent == [job.id]
    assert job.params["eps"] == pytest.approx(4 / 255) and job.params["study_id"] == s.study.id
    assert job.params["eval_eps"] == pytest.approx([0, 2 / 255, 4 / 255]) and job.params["seed"] == 5
    model = session.scalar(select(TrainedModel).where(TrainedModel.job_id == job.id))
    assert model is not None and model.method == "sip_at"
    missing = admin.post("/admin/training", data={**form, "study_id": ""})
    assert missing.status_code == 422 and "study_id" in missing.text

    # The worker's result, as train jobs store it: the comparison table and plot show it.
    model.metrics = {"clean_acc": 0.9, "robust_acc": {"pgd": {"0": 0.9, "0.00784314": 0.6, "0.0156863": 0.3}}}
    job.status = "succeeded"
    session.commit()
    page = admin.get("/admin/training").text
    assert "Clean and robust accuracy" in page and f"#{model.id} {model.name} · salience human 1/1 (pgd)" in page
    job_page = admin.get(f"/admin/jobs/{job.id}").text  # readable: coverage, table, curve; raw JSON folded
    assert "1 of 1</strong> training images have a human map" in job_page and 'id="figure-models"' in job_page
    assert "<summary>Result as stored (JSON)</summary>" not in job_page  # no result stored on the job here
    assert "<details><summary>Parameters</summary>" in job_page
    rows = _csv(admin.get("/admin/training/models.csv").text)
    assert rows[0]["clean_acc"] == "0.9" and rows[0]["pgd@2/255"] == "0.6" and rows[0]["pgd@4/255"] == "0.3"
    assert rows[0]["seed"] == "5" and rows[0]["status"] == "succeeded"


def test_job_page_shows_errors_and_cancels(admin: TestClient, session: Session) -> None:
    failed = Job(
        kind="train",
        params={"dataset_id": 1},
        status="failed",
        message="failed",
        error="ValueError: the dataset has one class",
        traceback='Traceback (most recent call last):\n  File "x.py"\nValueError: the dataset has one class',
    )
    queued = Job(kind="evaluate", params={"model_id": 1}, status="queued")
    session.add_all([failed, queued])
    session.commit()
    page = admin.get(f"/admin/jobs/{failed.id}").text
    assert "ValueError: the dataset has one class" in page and "Traceback (most recent call last)" in page
    assert "Cancel" not in page
    r = admin.post(f"/admin/jobs/{queued.id}/cancel", data={"csrf_token": admin.csrf}, follow_redirects=False)
    assert r.status_code == 303
    session.expire_all()
    assert queued.status == "cancelled"
    again = admin.post(f"/admin/jobs/{queued.id}/cancel", data={"csrf_token": admin.csrf})
    assert again.status_code == 409 and "nothing to cancel" in again.text


def test_results_are_split_by_masked_and_unmasked_stimuli(
    admin: TestClient, seeded, session: Session, storage: BlobStore
) -> None:
    """Responses to stimuli that spare the salient pixels and to ones that do not: one row, one curve and one
    fit per kind (clean trials are the false-alarm floor of both)."""
    s = seeded()
    masked = make_stimulus_set(session, storage, session.get(Dataset, 1))
    masked.masked = True
    p0, p1 = s.participants[0], s.participants[1]
    answer_trials(session, p0, masked.id, [("main", E2, "clean"), ("main", E8, "perturbed"), ("main", E8, "clean")])
    answer_trials(session, p1, masked.id, [("main", E2, "perturbed"), ("main", E8, "perturbed")])
    session.commit()
    rows = _csv(admin.get(f"/admin/studies/{s.study.id}/results/detection.csv?n_boot=0").text)
    got = {(round(float(r["eps"]) * 255), r["masked"]): (int(r["n"]), int(r["n_judged_perturbed"])) for r in rows}
    assert got == {
        (0, ""): (2, 1),
        (2, "False"): (3, 1),
        (2, "True"): (2, 1),
        (8, "False"): (3, 3),
        (8, "True"): (3, 2),
    }
    fit = _csv(admin.get(f"/admin/studies/{s.study.id}/results/fit.csv?n_boot=0").text)
    assert {r["group"] for r in fit} == {"unmasked", "masked"}
    page = admin.get(f"/admin/studies/{s.study.id}/results?n_boot=0").text
    detection = page[page.index('id="figure-detection"') :]
    assert "fit: masked (salient pixels spared)" in detection and "fit: unmasked (whole image)" in detection
    rt = _csv(admin.get(f"/admin/studies/{s.study.id}/results/rt.csv?n_boot=0").text)
    assert set(rt[0]) >= {"clean", "perturbed, unmasked (whole image)", "perturbed, masked (salient pixels spared)"}
