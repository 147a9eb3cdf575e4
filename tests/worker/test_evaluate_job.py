"""The evaluate job with the registry's attacks: APGD-T, FAB-T, Square and the AutoAttack ensemble (its per-sample
worst case beside each attack's column), the budgets of the params, the sanity-check warnings in the result."""

from __future__ import annotations

import pytest

from backend.db import session_scope
from backend.models import Job, TrainedModel
from backend.services.errors import InvalidInputError
from backend.services.job_params import validate_job_params
from backend.services.jobs import create_job, create_train_job
from sipat.attacks.autoattack import STANDARD
from tests.worker.workerkit import FAST_TRAIN
from worker.runner import execute
from worker.runtime import Runtime

#: Small budgets: the point is the plumbing and the ensemble's bookkeeping, not AutoAttack's strength.
TINY = {"apgd_steps": 3, "n_targets": 2, "square_queries": 20, "steps": 2}


@pytest.fixture
def model_id(rt: Runtime, dataset_id: int) -> int:
    with session_scope(rt.session_factory) as session:
        job, model = create_train_job(session, {"dataset_id": dataset_id, **FAST_TRAIN})
        job_id, model_id = job.id, model.id
    assert execute(job_id, runtime=rt).status == "succeeded"
    return model_id


def _evaluate(rt: Runtime, params: dict) -> dict:
    with session_scope(rt.session_factory) as session:
        job_id = create_job(session, "evaluate", params).id
    assert execute(job_id, runtime=rt).status == "succeeded"
    with session_scope(rt.session_factory) as session:
        return session.get(Job, job_id).result


def test_every_registry_attack_and_the_ensemble_with_its_worst_case(rt: Runtime, model_id: int) -> None:
    eps = [0, 0.1, 0.3]
    attacks = ["apgd", "apgd-t", "fab-t", "square", "autoattack"]
    params = {"model_id": model_id, "attacks": attacks, "eps": eps, "autoattack_every_sample": True, **TINY}
    result = _evaluate(rt, params)
    m = result["metrics"]
    acc = m["robust_acc"]
    stages = [f"autoattack/+{s}" for s in STANDARD] + [f"autoattack/{s}" for s in STANDARD]
    assert set(acc) == {*attacks, *stages} and m["n"] == 12 and m["attacks"] == attacks
    assert m["budget"] == {
        "pgd_steps": 2,
        "apgd_steps": 3,
        "n_targets": 2,
        "fab_steps": 3,
        "square_queries": 20,
        "square_p_init": 0.8,
    }
    for e in ("0.1", "0.3"):
        worst = acc["autoattack"][e]
        # The per-sample worst case is never above any member's own accuracy, and equals the last running column.
        assert all(worst <= acc[f"autoattack/{s}"][e] + 1e-12 for s in STANDARD)
        assert worst == acc[f"autoattack/+{STANDARD[-1]}"][e]
        running = [acc[f"autoattack/+{s}"][e] for s in STANDARD]
        assert running == sorted(running, reverse=True)
    assert all(acc[c]["0"] == m["clean_acc"] for c in acc)  # eps 0 is the clean accuracy in every column
    assert acc["autoattack"]["0.3"] < m["clean_acc"]  # at 0.3 (76/255) the ensemble breaks something
    assert isinstance(m["warnings"], list) and all(isinstance(w, str) for w in m["warnings"])
    with session_scope(rt.session_factory) as session:
        stored = session.get(TrainedModel, model_id).metrics["evaluations"][result["key"]]
    assert stored["robust_acc"] == acc and stored["warnings"] == m["warnings"]


def test_the_sanity_checks_warn_in_the_result(rt: Runtime, model_id: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model that outputs probabilities (a softmax left on the end) is AutoAttack's first red flag: the
    stored result must carry the warning with its numbers, not only the (overstated) accuracies."""
    from torch import nn

    from worker.jobs import evaluate as job

    load = job.load_stored_model

    def with_softmax(*args, **kwargs):
        model, meta = load(*args, **kwargs)
        return nn.Sequential(model, nn.Softmax(dim=1)), meta

    plain = _evaluate(rt, {"model_id": model_id, "attacks": ["pgd"], "eps": [0, 0.1], **TINY})["metrics"]
    assert not any("probabilities" in w for w in plain["warnings"])
    monkeypatch.setattr(job, "load_stored_model", with_softmax)
    m = _evaluate(rt, {"model_id": model_id, "attacks": ["pgd"], "eps": [0, 0.1], "key": "softmax", **TINY})["metrics"]
    assert any("output probabilities, not logits" in w and "rows sum to 1" in w for w in m["warnings"]), m
    with session_scope(rt.session_factory) as session:
        assert session.get(TrainedModel, model_id).metrics["evaluations"]["softmax"]["warnings"] == m["warnings"]


def test_apgd_t_on_a_model_of_three_classes_fails_at_once_with_the_reason(
    rt: Runtime, model_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torch import nn

    from worker.jobs import evaluate as job

    load = job.load_stored_model

    class FirstThree(nn.Module):
        def forward(self, z):
            return z[:, :3]

    def three_classes(*args, **kwargs):
        model, meta = load(*args, **kwargs)
        return nn.Sequential(model, FirstThree()), {**meta, "classes": meta["classes"][:3]}

    monkeypatch.setattr(job, "load_stored_model", three_classes)
    with session_scope(rt.session_factory) as session:
        bad = create_job(session, "evaluate", {"model_id": model_id, "attacks": ["pgd", "autoattack"], **TINY}).id
    assert execute(bad, runtime=rt).status == "failed"
    with session_scope(rt.session_factory) as session:
        error = session.get(Job, bad).error
    assert "autoattack need a model of at least 4 classes" in error and "has 3" in error, error
    fab = _evaluate(rt, {"model_id": model_id, "attacks": ["fab-t", "square"], "eps": [0, 0.2], **TINY})["metrics"]
    assert set(fab["robust_acc"]) == {"fab-t", "square"} and fab["n"] == 6  # the images of those 3 classes


def test_params_take_the_registry_names_and_the_cli_budgets() -> None:
    p = validate_job_params("evaluate", {"model_id": 1})
    assert (p["attacks"], p["steps"], p["apgd_steps"], p["n_targets"], p["square_queries"]) == (
        ["pgd", "apgd"],
        20,
        100,
        9,
        5000,
    )
    p = validate_job_params("evaluate", {"model_id": 1, "attacks": ["autoattack", "apgd-t", "autoattack"]})
    assert p["attacks"] == ["autoattack", "apgd-t"]
    for bad, field in [
        ({"attacks": ["cw"]}, "attacks"),
        ({"attacks": []}, "attacks"),
        ({"apgd_steps": 0}, "apgd_steps"),
        ({"square_queries": 10**6}, "square_queries"),
        ({"n_targets": 0}, "n_targets"),
    ]:
        with pytest.raises(InvalidInputError, match=field):
            validate_job_params("evaluate", {"model_id": 1, **bad})
