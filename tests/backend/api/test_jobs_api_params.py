"""`POST /api/v1/jobs` takes a discriminated union on `kind`: /openapi.json lists each kind's params (the train
job's recipe included, with its defaults), and bad params still answer the one-line 422 naming the field."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.models import Job
from backend.storage import BlobStore
from sipat.train_config import RECIPE
from tests.backend.factories import make_dataset
from tests.backend.research_factories import FakeEnqueuer


def _resolve(spec: dict, ref: dict) -> dict:
    name = ref["$ref"].rsplit("/", 1)[-1]
    return spec["components"]["schemas"][name]


def test_openapi_describes_the_params_of_each_kind(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    body = spec["paths"]["/api/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["discriminator"]["propertyName"] == "kind"
    kinds = {
        kind: spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]
        for kind, ref in body["discriminator"]["mapping"].items()
    }
    assert set(kinds) == {"train", "evaluate", "generate_stimuli", "rank_paintings"}
    train = _resolve(spec, kinds["train"]["properties"]["params"])
    fields = train["properties"]
    for knob, default in RECIPE.items():  # the recipe's knobs under the train kind, with its defaults
        assert fields[knob]["default"] == default, knob
        assert fields[knob].get("description"), knob
    for knob in ("val_share", "val_steps", "patience", "method", "eps", "epochs"):
        assert knob in fields
    assert fields["eps_ramp_epochs"]["minimum"] == 0 and fields["val_share"]["exclusiveMaximum"] == 1
    assert train["required"] == ["dataset_id"]
    evaluate = _resolve(spec, kinds["evaluate"]["properties"]["params"])
    assert "model_id" in evaluate["properties"] and "eps_ramp_epochs" not in evaluate["properties"]
    assert "predicted" in fields["salience"]["enum"] and fields["predictor_epochs"]["default"] == 20
    rank = _resolve(spec, kinds["rank_paintings"]["properties"]["params"])
    assert rank["required"] == ["study_id"] and rank["properties"]["top"]["default"] == 50


def test_bad_params_are_a_422_naming_the_field(
    api: TestClient, session: Session, storage: BlobStore, enqueued: FakeEnqueuer
) -> None:
    dataset = make_dataset(session, storage)
    session.commit()
    cases = [
        (
            {"kind": "train", "params": {"dataset_id": dataset.id, "eps_ramp_epochs": -1}},
            "invalid train parameters: eps_ramp_epochs: Input should be greater than or equal to 0",
        ),
        (
            {"kind": "train", "params": {"dataset_id": dataset.id, "grad_clip": 0}},
            "invalid train parameters: grad_clip: Input should be greater than 0",
        ),
        (
            {"kind": "train", "params": {"dataset_id": dataset.id, "patience": 2}},
            "invalid train parameters: params: Value error, patience (early stopping) needs a validation split",
        ),
        (
            {"kind": "train", "params": {"dataset_id": dataset.id, "epochs": 0, "lr": -1}},
            "invalid train parameters: epochs: Input should be greater than or equal to 1; lr: Input should be "
            "greater than 0",
        ),
        ({"kind": "train"}, "invalid train parameters: params: Field required"),
        ({"kind": "evaluate", "params": {"model_id": "x"}}, "invalid evaluate parameters: model_id: Input should"),
        ({"kind": "bake", "params": {}}, "unknown job kind 'bake'; use one of train, evaluate, generate_stimuli"),
    ]
    for body, message in cases:
        r = api.post("/api/v1/jobs", json=body)
        assert r.status_code == 422 and r.json()["detail"].startswith(message), (body, r.text)
    # Not a job at all: FastAPI's list of field errors.
    r = api.post("/api/v1/jobs", json=[1, 2])
    assert r.status_code == 422 and isinstance(r.json()["detail"], list)
    assert enqueued.sent == [] and session.scalar(select(func.count()).select_from(Job)) == 0


def test_a_train_job_gets_the_recipe_by_default(
    api: TestClient, session: Session, storage: BlobStore, enqueued: FakeEnqueuer
) -> None:
    dataset = make_dataset(session, storage)
    session.commit()
    r = api.post("/api/v1/jobs", json={"kind": "train", "params": {"dataset_id": dataset.id, "method": "pgd_at"}})
    assert r.status_code == 202, r.text
    params = r.json()["params"]
    assert {k: params[k] for k in RECIPE} == RECIPE and params["val_share"] == 0 and params["patience"] is None
    r = api.post(
        "/api/v1/jobs",
        json={"kind": "train", "params": {"dataset_id": dataset.id, "method": "pgd_at", "eps_ramp_epochs": 0}},
    )
    assert r.status_code == 202 and r.json()["params"]["eps_ramp_epochs"] == 0
    assert len(enqueued.sent) == 2


def test_an_eps_ramp_as_long_as_the_run_is_a_422_saying_what_to_fix(
    api: TestClient, session: Session, storage: BlobStore, enqueued: FakeEnqueuer
) -> None:
    dataset = make_dataset(session, storage)
    session.commit()
    base = {"dataset_id": dataset.id, "method": "pgd_at", "eps": 0.1}
    for epochs, ramp, reached in (
        (10, 10, "reaches eps 0.1 only in the last batch"),
        (4, 10, "never reaches eps 0.1 (it ends at 0.04)"),
    ):
        params = {**base, "epochs": epochs, "eps_ramp_epochs": ramp}
        r = api.post("/api/v1/jobs", json={"kind": "train", "params": params})
        assert r.status_code == 422, r.text
        assert r.json()["detail"] == (
            f"invalid train parameters: eps_ramp_epochs ({ramp}) >= epochs ({epochs}): the training radius "
            f"{reached}; set eps_ramp_epochs below epochs (e.g. a third of them) or train more epochs"
        )
    r = api.post("/api/v1/jobs", json={"kind": "train", "params": {**base, "epochs": 4}})  # the default ramp, 10
    assert r.status_code == 422 and "eps_ramp_epochs (10) >= epochs (4)" in r.json()["detail"]
    assert enqueued.sent == [] and session.scalar(select(func.count()).select_from(Job)) == 0
    # a shorter ramp, or none; standard training or eps 0, which have no radius to reach: queued
    for changes in ({"eps_ramp_epochs": 9}, {"eps_ramp_epochs": 0}, {"method": "standard"}, {"eps": 0}):
        r = api.post("/api/v1/jobs", json={"kind": "train", "params": {**base, "epochs": 10, **changes}})
        assert r.status_code == 202, (changes, r.text)
    assert len(enqueued.sent) == 4
