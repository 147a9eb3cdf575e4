"""`sipat experiment --autoattack-check N`: AutoAttack on a fixed test subset for an experiment's saved models,
beside the experiment's own (cheaper) attack on the same images."""

from __future__ import annotations

import csv

import pytest

from sipat.attacks.registry import AttackBudget
from sipat.experiment import ExperimentConfig, aacheck, run_experiment
from sipat.experiment.aacheck import autoattack_check

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = AttackBudget(apgd_steps=5, n_targets=2, fab_steps=5, square_queries=30)  # the published one is for real runs

SAVED = dict(
    name="aacheck",
    dataset="mnist5k",
    train_limit=120,
    epochs=1,
    steps=2,
    eps=0.2,
    lr=0.05,
    seeds=[0, 1],
    methods=["standard", "pgd_at"],
    variants=["human"],
    eval_eps=[0, 0.1],
    eval_attacks=["apgd"],
    eval_apgd_steps=3,
    eval_limit=40,
    save_models=True,
)


def test_the_check_compares_both_columns_on_the_same_images_caches_them_and_lists_runs_without_a_model(
    tmp_path, monkeypatch
):
    cfg = ExperimentConfig.from_dict(SAVED)
    run_experiment(cfg.replace(seeds=[0]), tmp_path, device="cpu", progress=False, log=lambda _m: None)
    seen: list[int] = []
    real = aacheck._check_run

    def counting(cfg_, path, test, eps, device, budget):
        seen.append(len(test))
        assert budget == SMALL
        return real(cfg_, path, test, eps, device, budget)

    monkeypatch.setattr(aacheck, "_check_run", counting)
    files = autoattack_check(cfg, tmp_path, limit=6, budget=SMALL, log=lambda _m: None)
    assert seen == [6, 6]  # both saved models of seed 0, each on the 6 images
    rows = list(csv.DictReader(files["autoattack_check_csv"].open()))
    assert [(r["arm"], r["seed"]) for r in rows] == [("standard", "0"), ("pgd_at", "0")]
    for r in rows:
        assert 0 <= float(r["autoattack"]) <= float(r["clean_acc"])
        assert float(r["gap"]) == pytest.approx(float(r["cheap"]) - float(r["autoattack"]))
    text = files["autoattack_check"].read_text()
    assert "| standard | 1 |" in text and "| pgd_at | 1 |" in text
    assert "Not checked (no saved model" in text and "pgd_at__none__seed1" in text  # seed 1 never ran

    def fail(*_a, **_k):
        raise AssertionError("a cached run was evaluated again")

    monkeypatch.setattr(aacheck, "_check_run", fail)
    again = autoattack_check(cfg, tmp_path, limit=6, seeds=[0], budget=SMALL, log=lambda _m: None)
    assert list(csv.DictReader(again["autoattack_check_csv"].open())) == rows
    assert "Not checked" not in again["autoattack_check"].read_text()
    assert not list((tmp_path / "autoattack_check").glob("*__n6.json"))  # the published budget's cache is apart


def test_the_check_needs_images():
    with pytest.raises(ValueError, match="at least one test image"):
        autoattack_check(ExperimentConfig.from_dict(SAVED), "unused", limit=0)
