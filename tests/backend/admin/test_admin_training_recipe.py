"""The dashboard's side of the training recipe: the form's "advanced" fold with the recipe's defaults, its
values in the queued job, and the job page's training curves drawn from the per-epoch log."""

from __future__ import annotations

import csv
import io
import re

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import Job, TrainedModel
from backend.storage import BlobStore
from sipat.train_config import RECIPE
from tests.backend.admin.admin_factories import Enqueued
from tests.backend.factories import make_dataset


def _input_value(page: str, name: str) -> str:
    match = re.search(rf'<input id="[^"]+" name="{name}" [^>]*value="([^"]*)"', page)
    assert match is not None, name
    return match.group(1)


def test_the_form_shows_the_recipe_in_an_advanced_fold_with_its_defaults(admin: TestClient, session, storage) -> None:
    make_dataset(session, storage)
    session.commit()
    page = admin.get("/admin/training").text
    fold = page[page.index('<details class="span more" id="t-recipe">') : page.index("Queue training")]
    assert _input_value(page, "epochs") == "20"  # the job's default: the 10-epoch ramp, then 10 at the full eps
    assert "<summary>Advanced: training recipe</summary>" in fold
    shown = {name: _input_value(fold, name) for name in ("eps_ramp_epochs", "warmup_epochs", "crop_padding")}
    assert shown == {k: str(RECIPE[k]) for k in shown}
    assert float(_input_value(fold, "grad_clip")) == RECIPE["grad_clip"]
    assert float(_input_value(fold, "weight_decay")) == RECIPE["weight_decay"]
    assert '<option value="true" selected>crop and flip' in fold  # RECIPE["augment"] and RECIPE["flip"] are True
    assert '<option value="crop" >crop only, no flip' in fold
    assert (_input_value(fold, "val_share"), _input_value(fold, "patience")) == ("0.0", "none")


def _form(admin: TestClient, dataset_id: int, **extra: str) -> dict[str, str]:
    return {
        "csrf_token": admin.csrf,
        "dataset_id": str(dataset_id),
        "method": "pgd_at",
        "salience": "none",
        "epochs": "4",
        **extra,
    }


def test_the_recipe_knobs_of_the_form_reach_the_job(
    admin: TestClient, session: Session, storage: BlobStore, enqueued: Enqueued
) -> None:
    dataset = make_dataset(session, storage)
    session.commit()
    knobs = {
        "eps_ramp_epochs": "3",
        "warmup_epochs": "0",
        "grad_clip": "none",
        "weight_decay": "1e-4",
        "augment": "false",
        "crop_padding": "2",
        "val_share": "0.25",
        "val_steps": "4",
        "patience": "2",
    }
    r = admin.post("/admin/training", data=_form(admin, dataset.id, **knobs), follow_redirects=False)
    assert r.status_code == 303, r.text
    job = session.scalar(select(Job).where(Job.kind == "train"))
    assert {k: job.params[k] for k in knobs} == {
        "eps_ramp_epochs": 3,
        "warmup_epochs": 0,
        "grad_clip": None,
        "weight_decay": 1e-4,
        "augment": False,
        "crop_padding": 2,
        "val_share": 0.25,
        "val_steps": 4,
        "patience": 2,
    }
    # Left empty, a knob takes the recipe's value (a 10-epoch ramp: the run must be longer).
    r = admin.post("/admin/training", data=_form(admin, dataset.id, epochs="20", eps_ramp_epochs="", grad_clip=""))
    latest = session.scalars(select(Job).where(Job.kind == "train").order_by(Job.id.desc())).first()
    assert latest.id != job.id and (latest.params["eps_ramp_epochs"], latest.params["grad_clip"]) == (10, 10.0)

    # Bad values: 422 naming the field, nothing queued.
    for bad, fragment in (
        ({"warmup_epochs": "-1"}, "warmup_epochs: Input should be greater than or equal to 0"),
        ({"val_share": "1"}, "val_share: Input should be less than 1"),
        ({"patience": "3", "val_share": "0"}, "patience (early stopping) needs a validation split"),
        ({"crop_padding": "two"}, "crop padding: &#39;two&#39; is not a whole number"),
    ):
        r = admin.post("/admin/training", data=_form(admin, dataset.id, **bad))
        assert r.status_code == 422 and fragment in r.text, (bad, r.text[-2000:])
    assert len(enqueued.sent) == 2


def test_crop_only_is_augmentation_without_flip(
    admin: TestClient, session: Session, storage: BlobStore, enqueued: Enqueued
) -> None:
    dataset = make_dataset(session, storage)
    session.commit()
    for choice, expected in (("crop", (True, False)), ("true", (True, True)), ("false", (False, True))):
        form = _form(admin, dataset.id, eps_ramp_epochs="1", augment=choice)
        r = admin.post("/admin/training", data=form, follow_redirects=False)
        assert r.status_code == 303, r.text
        job = session.scalars(select(Job).where(Job.kind == "train").order_by(Job.id.desc())).first()
        assert (job.params["augment"], job.params["flip"]) == expected, choice
    r = admin.post("/admin/training", data=_form(admin, dataset.id, eps_ramp_epochs="1", augment="mirror"))
    assert r.status_code == 422 and "augmentation: choose crop and flip (true), crop only (crop) or none" in r.text
    assert len(enqueued.sent) == 3


def test_an_eps_ramp_as_long_as_the_run_re_renders_the_form_with_the_error(
    admin: TestClient, session: Session, storage: BlobStore, enqueued: Enqueued
) -> None:
    dataset = make_dataset(session, storage)
    session.commit()
    r = admin.post("/admin/training", data=_form(admin, dataset.id, eps_ramp_epochs="4", augment="crop"))
    assert r.status_code == 422
    assert (
        "eps_ramp_epochs (4) &gt;= epochs (4): the training radius reaches eps 0.03137 only in the last batch; "
        "set eps_ramp_epochs below epochs (e.g. a third of them) or train more epochs" in r.text
    )
    # the form comes back as it was sent, to be corrected
    assert (_input_value(r.text, "epochs"), _input_value(r.text, "eps_ramp_epochs")) == ("4", "4")
    assert '<option value="crop" selected>crop only' in r.text
    r = admin.post("/admin/training", data=_form(admin, dataset.id))  # the default ramp (10) outlasts 4 epochs
    assert r.status_code == 422 and "eps_ramp_epochs (10) &gt;= epochs (4)" in r.text
    assert enqueued.sent == [] and session.scalar(select(Job).where(Job.kind == "train")) is None


LOG = [
    {
        "epoch": 1,
        "loss": 1.8,
        "accuracy": 0.3,
        "lr": 0.02,
        "eps": 0.01,
        "seconds": 1.0,
        "val_clean": 0.5,
        "val_robust": 0.2,
    },
    {
        "epoch": 2,
        "loss": 1.2,
        "accuracy": 0.5,
        "lr": 0.04,
        "eps": 0.02,
        "seconds": 1.0,
        "val_clean": 0.7,
        "val_robust": 0.4,
    },
    {
        "epoch": 3,
        "loss": 0.9,
        "accuracy": 0.6,
        "lr": 0.06,
        "eps": 0.03,
        "seconds": 1.0,
        "val_clean": 0.8,
        "val_robust": 0.3,
    },
]


def test_the_job_page_draws_the_training_curves(admin: TestClient, session: Session) -> None:
    running = Job(kind="train", params={"dataset_id": 1, "eps": 0.1}, status="running", result={"train_log": LOG[:2]})
    session.add(running)
    session.flush()
    done = Job(kind="train", params={"dataset_id": 1, "eps": 0.03}, status="succeeded", result={"model_id": 1})
    session.add(done)
    session.flush()  # a job finished before the log was in the result: its model's history is drawn
    session.add(
        TrainedModel(
            job_id=done.id, name="m", arch="small_cnn", method="pgd_at", metrics={"history": LOG, "best_epoch": 2}
        )
    )
    session.commit()

    page = admin.get(f"/admin/jobs/{running.id}").text
    assert 'id="figure-train_log"' in page and "(the epochs so far" in page
    assert "Loss per epoch" in page and "Accuracy per epoch" in page
    assert "Training ended at eps 0.02, below the job&#39;s eps 0.1: the eps ramp is longer than the run" in page
    assert 'data-label="validation, robust (PGD at the training eps)"' in page
    loss_line = re.search(r'data-label="training loss"><polyline points="([^"]+)"', page)
    assert loss_line is not None
    ys = [float(p.split(",")[1]) for p in loss_line.group(1).split()]
    assert len(ys) == 2 and ys[0] < ys[1]  # the loss falls: its line goes down the page (SVG y grows downwards)

    page = admin.get(f"/admin/jobs/{done.id}").text
    assert 'id="figure-train_log"' in page and "weights of epoch 2 (best robust validation accuracy)" in page
    assert "Training ended at eps" not in page  # the ramp reached the job's eps 0.03
    rows = list(csv.DictReader(io.StringIO(admin.get(f"/admin/jobs/{done.id}/train_log.csv").text)))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"] and rows[2]["val_robust"] == "0.3"
    assert rows[0]["eps"] == "0.01"

    evaluate = Job(kind="evaluate", params={"model_id": 1}, status="succeeded", result={"metrics": {}})
    session.add(evaluate)
    session.commit()
    assert 'id="figure-train_log"' not in admin.get(f"/admin/jobs/{evaluate.id}").text
