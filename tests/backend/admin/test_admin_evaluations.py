"""Evaluations on the dashboard: the AutoAttack ensemble's worst case beside its stage columns, every attack of
the registry, and the sanity checks' warnings, on an evaluate job's page and in the model comparison."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.admin.comparison import ModelRow, models_figure
from backend.admin.evaluations import column_order, evaluation_figure, evaluations_table
from backend.models import Job, TrainedModel

WARNING = "black-box square beats the white-box attacks at eps 0.1 (0.2000 < 0.5000): the gradients are likely masked"


def metrics(**extra: object) -> dict:
    """Stored metrics as `EvalResult.to_dict` writes them (eps keys are strings)."""
    return {
        "n": 10,
        "clean_acc": 0.9,
        "robust_acc": {
            "pgd": {"0": 0.9, "0.1": 0.5},
            "autoattack/+square": {"0": 0.9, "0.1": 0.2},
            "square": {"0": 0.9, "0.1": 0.2},
            "autoattack/+apgd-ce": {"0": 0.9, "0.1": 0.4},
            "autoattack": {"0": 0.9, "0.1": 0.2},
            "apgd-t": {"0": 0.9, "0.1": 0.45},
        },
        "warnings": [WARNING],
        **extra,
    }


def test_the_worst_case_stands_beside_its_stages_in_registry_order() -> None:
    cols = column_order(["autoattack/square", "pgd", "autoattack/+square", "square", "autoattack", "zzz", "apgd-t"])
    assert cols == ["pgd", "apgd-t", "square", "autoattack", "autoattack/+square", "autoattack/square", "zzz"]
    fig = evaluation_figure(metrics())
    table = fig.tables[0]
    assert table.columns == ["attack", "n", "clean_acc", "eps 0.1"]
    rows = {r[0]: r for r in table.rows}
    assert [r[0] for r in table.rows] == ["pgd", "apgd-t", "square", "autoattack", *column_order(
        ["autoattack/+apgd-ce", "autoattack/+square"])]  # fmt: skip
    assert rows["autoattack"][3] == 0.2 and rows["pgd"][3] == 0.5 and rows["pgd"][2] == 0.9
    assert fig.svg is not None and "autoattack/+square" not in fig.svg and ">autoattack<" in fig.svg
    assert "1 warning(s)" in fig.caption
    eight = evaluation_figure({"n": 1, "clean_acc": 1.0, "robust_acc": {"pgd": {"0.0313725": 0.5}}})
    assert eight.tables[0].columns[-1] == "eps 8/255"  # 6 stored digits still read as 8/255
    assert "no warning" in evaluation_figure(metrics(warnings=[])).caption


def row(id: int, m: dict | None, method: str = "pgd_at", seed: int = 0) -> ModelRow:
    params = {"dataset_id": 1, "method": method, "seed": seed}
    return ModelRow(id, f"m{id}", method, "small_cnn", seed, 1, "succeeded", m, params)


def test_the_comparison_shows_every_column_and_the_warnings() -> None:
    evaluated = metrics(evaluations={"dataset1/test/unmasked": {**metrics(), "masked": False}})
    fig = models_figure([row(1, evaluated), row(2, {"clean_acc": 0.8, "robust_acc": {"pgd": {"0.1": 0.3}}}, "trades")])
    main = fig.tables[0]
    rows = {r[0]: dict(zip(main.columns, r, strict=True)) for r in main.rows}
    assert main.columns[-1] == "warnings" and rows["1"]["warnings"] == WARNING and rows["2"]["warnings"] == ""
    assert rows["1"]["autoattack@0.1"] == 0.2 and rows["2"]["autoattack@0.1"] is None
    assert main.columns.index("autoattack@0.1") + 1 == main.columns.index("autoattack/+apgd-ce@0.1")
    assert "(autoattack)" in (fig.svg or "") and "autoattack/+" not in (fig.svg or "")
    evals = fig.tables[1]
    assert evals.rows[0][:7] == [1, "m1", "pgd_at", "dataset1/test/unmasked", False, 10, 0.9]
    assert evals.rows[0][-1] == WARNING and "autoattack@0.1" in evals.columns
    # Seeds of one recipe share a row: each warning names its model.
    group = models_figure([row(3, metrics(), seed=0), row(4, metrics(warnings=[]), seed=1)]).tables[0]
    assert group.rows[0][-1] == f"#3: {WARNING}"
    assert evaluations_table([row(5, {"clean_acc": 0.5})]).rows == []


def test_an_evaluate_jobs_page_shows_the_table_and_the_warnings(admin: TestClient, session: Session) -> None:
    model = TrainedModel(name="m", arch="small_cnn", method="pgd_at")
    session.add(model)
    session.flush()
    key = "dataset1/test/unmasked"
    job = Job(
        kind="evaluate",
        params={"model_id": model.id, "attacks": ["pgd", "square", "autoattack"]},
        status="succeeded",
        result={"model_id": model.id, "key": key, "metrics": metrics()},
    )
    train = Job(kind="train", params={}, status="succeeded", result={})
    session.add_all([job, train])
    session.commit()
    page = admin.get(f"/admin/jobs/{job.id}").text
    assert 'id="figure-evaluation"' in page and 'id="check-warnings"' in page
    assert "the gradients are likely masked" in page and f"stored as {key}" in page
    assert "<td>autoattack/+apgd-ce</td>" in page
    r = admin.get(f"/admin/jobs/{job.id}/evaluation.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    table = {line["attack"]: line for line in csv.DictReader(io.StringIO(r.text))}
    assert table["autoattack"]["eps 0.1"] == "0.2" and table["square"]["clean_acc"] == "0.9"
    assert admin.get(f"/admin/jobs/{train.id}/evaluation.csv").status_code == 404
    assert admin.get("/admin/jobs/99999/evaluation.csv").status_code == 404
    assert 'id="check-warnings"' not in admin.get(f"/admin/jobs/{train.id}").text


def test_the_training_page_queues_an_evaluation_with_any_registry_attack(
    admin: TestClient, session: Session, enqueued
) -> None:
    model = TrainedModel(name="m", arch="small_cnn", method="pgd_at", checkpoint_sha256="0" * 64)
    session.add(model)
    session.commit()
    page = admin.get("/admin/training").text
    assert 'id="evaluate-form"' in page and all(f'name="attack:{a}"' in page for a in ("apgd-t", "fab-t", "square"))
    form = {
        "csrf_token": admin.csrf,
        "model_id": str(model.id),
        "attack:autoattack": "on",
        "attack:fab-t": "on",
        "eps": "0, 2/255 8/255",
        "split": "test",
        "steps": "20",
        "apgd_steps": "5",
        "square_queries": "50",
    }
    r = admin.post("/admin/training/evaluate", data=form, follow_redirects=False)
    assert r.status_code == 303
    job = session.scalar(select(Job).where(Job.kind == "evaluate"))
    assert r.headers["location"] == f"/admin/jobs/{job.id}" and enqueued.sent == [job.id]
    assert job.params["attacks"] == ["fab-t", "autoattack"] and job.params["apgd_steps"] == 5
    assert job.params["square_queries"] == 50 and job.params["eps"] == pytest.approx([0, 2 / 255, 8 / 255])
    for change, fragment in [
        ({"attack:autoattack": "", "attack:fab-t": ""}, "tick at least one attack"),
        ({"apgd_steps": "0"}, "apgd_steps"),
        ({"eps": "2/0"}, "evaluation eps"),
        ({"model_id": "999"}, "no model with id 999"),
        ({"model_id": ""}, "choose the model"),
    ]:
        bad = admin.post("/admin/training/evaluate", data={**form, **change})
        assert bad.status_code == 422 and fragment in bad.text, (change, bad.text[-2000:])
    assert session.scalar(select(func.count(Job.id))) == 1
