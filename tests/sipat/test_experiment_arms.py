"""The decisive experiment's arms and variants: parsing (good and bad), the maps each variant makes, the run
settings that make a finished run stale, and the `predicted` source filling exactly the images without maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sipat.controls import coverage, overlap
from sipat.data import load_builtin
from sipat.experiment import (
    Arm,
    ExperimentConfig,
    MapSet,
    RunSpec,
    Variant,
    plan_items,
    plan_runs,
    predicted_maps,
    run_settings,
    unannotate,
    variant_maps,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _plan(methods: list[str], variants: list[str] | None = None) -> list[tuple[str, str]]:
    cfg = ExperimentConfig(methods=methods, variants=variants or ["human"], seeds=[0])
    return [(a.name, v.name) for a, v in plan_items(cfg)]


# ----------------------------------------------------------------------------------------------------------
# parsing


def test_method_arms_parse_to_canonical_names():
    assert _plan(["pgd_at@eps=0.5x", "pgd_at@eps=3/4x", "pgd_at@eps=1x", "trades@beta=1", "trades"]) == [
        ("pgd_at@eps=0.5x", "none"),
        ("pgd_at@eps=0.75x", "none"),
        ("pgd_at", "none"),  # 1x is the training eps itself
        ("trades@beta=1", "none"),
        ("trades", "none"),
    ]
    assert _plan(["sip_trades@beta=1@human,human+displaced"], ["gradcam"]) == [
        ("sip_trades@beta=1", "human"),
        ("sip_trades@beta=1", "human+displaced"),
    ]
    assert _plan(["sip_at@eps=0.5x"]) == [("sip_at@eps=0.5x", "human")]
    run = RunSpec("pgd_at", Variant(), 3, eps_factor=0.5)
    assert run.run_id == "pgd_at@eps=0.5x__none__seed3" and run.arm == Arm("pgd_at", 0.5)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("pgd_at@eps=0.5", "factor of the training eps, e.g. eps=0.5x"),
        ("pgd_at@eps=0x", "eps factor must be > 0"),
        ("pgd_at@eps=-1x", "eps factor must be > 0"),
        ("pgd_at@eps=halfx", "must be a number or a fraction"),
        ("standard@eps=0.5x", "standard trains without an adversary"),
        ("pgd_at@beta=1", "only trades and sip_trades take it"),
        ("trades@beta=0", "beta must be > 0"),
        ("trades@beta=1@beta=2", "unknown or repeated modifier"),
        ("trades@gamma=1", "no @variant"),  # not a modifier: read as a variant list, and trades takes none
        ("sip_at@gamma=1", "source must be one of"),
        ("sip_at@human@gradcam", "give the variants once"),
        ("pgd_at@human", "uses no salience, so it takes no @variant"),
        ("clean_mix@human+displaced", "depends only on coverage, which displaced keeps"),
        ("sip_at@none", "needs maps"),
        ("pgd_att", "unknown method"),
    ],
)
def test_bad_arms_are_refused_saying_how_to_write_them(entry, message):
    with pytest.raises(ValueError, match=message):
        ExperimentConfig(methods=[entry], variants=["human"])


def test_variant_tokens_parse_in_any_order_to_one_name():
    v = Variant.parse("gradcam+displaced+top=1/4")
    assert (v.source, v.top, v.control, v.name) == ("gradcam", 0.25, "displaced", "gradcam+top=0.25+displaced")
    assert Variant.parse("human+random").name == "human+random" and Variant.parse("human+random").moved
    assert Variant.parse("predicted+unannotated=0.75").name == "predicted+unannotated=0.75"
    assert Variant("human", True).name == "human+shuffled" == Variant.parse("human+shuffled").name  # as before
    assert Variant.parse("human+shuffled+unannotated=0.5").name == "human+shuffled+unannotated=0.5"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("human+top=1.5", "top is the share of pixels kept"),
        ("human+top=0", "top is the share of pixels kept"),
        ("human+top", "unknown part 'top'"),
        ("human+displaced+random", "one control at most"),
        ("human+displaced=1", "unknown part"),
        ("predicted+unannotated=1", "the predictor needs some human maps"),
        ("grad-cam", "source must be one of"),
    ],
)
def test_bad_variants_are_refused(text, message):
    with pytest.raises(ValueError, match=message):
        Variant.parse(text)


@pytest.mark.parametrize(
    "name",
    [
        "fashion",
        "fashion-cpu",
        "fashion-cpu8",
        "fashion-trades-cpu",
        "fashion-trades-cpu8",
        "kcurve8-cpu",
        "premise",
        "premise-pilot",
        "premise-cpu",
        "premise-cpu8",
        "premise-long8",
        "premise-full8",
        "premise-trades8",
        "premise-tradesfront8",
    ],
)
def test_the_decisive_configs_plan_every_arm_with_one_recipe(name):
    cfg = ExperimentConfig.from_file(CONFIGS / f"{name}.json")
    runs = plan_runs(cfg)
    assert len({r.run_id for r in runs}) == len(runs)
    arms = {r.arm.name for r in runs}
    for entry in cfg.methods:  # every methods entry made at least one run
        assert entry.split("@human")[0].split("@gradcam")[0] in arms
    t = cfg.train  # the recipe (sipat.train_config.RECIPE; the short configs shorten the ramp), for every arm
    assert t.eps_ramp_epochs > 0 and t.warmup_epochs > 0 and t.grad_clip == 10.0
    # premise's class is the texture's orientation: a horizontal flip swaps 45 and 135 degrees, so no flips there
    assert t.augment == (cfg.dataset != "premise")
    assert t.eps_ramp_epochs < t.epochs and t.weight_decay == 5e-4
    if name in ("fashion", "premise"):
        assert (t.eps_ramp_epochs, t.warmup_epochs, len(cfg.seeds), cfg.eval_limit) == (10, 5, 8, 2000)
        assert {"pgd_at", "pgd_at@eps=0.5x", "pgd_at@eps=0.75x", "trades", "trades@beta=1", "trades@beta=3"} <= arms
        assert {r.variant.control for r in runs} >= {"displaced", "random"}


@pytest.mark.parametrize(
    ("rung", "base", "budget"),
    [
        # premise-cpu8 trained 3x longer, evaluated on all its 1,000 test images
        ("premise-long8", "premise-cpu8", {"epochs", "eval_limit", "variants"}),
        # premise.json's data, recipe and budget; a cheaper evaluation than the GPU run's
        ("premise-full8", "premise", {"eval_eps", "eval_attacks", "eval_apgd_steps", "eval_masked"}),
    ],
)
def test_the_premise_budget_rungs_change_only_the_budget(rung, base, budget):
    """The budget ladder of docs/results.md compares SIP-AT's frontier margin across budgets: a rung that
    also changed the data or the recipe would confound that comparison."""
    a = ExperimentConfig.from_file(CONFIGS / f"{rung}.json").to_dict()
    b = ExperimentConfig.from_file(CONFIGS / f"{base}.json").to_dict()
    changed = {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
    assert changed == {"name", "methods"} | budget
    assert {"standard", "pgd_at", "pgd_at@eps=0.5x", "pgd_at@eps=0.75x", "sip_at"} <= set(a["methods"])
    assert set(a["variants"]) <= set(b["variants"]) and "human+random" in a["variants"]


# ----------------------------------------------------------------------------------------------------------
# run settings: what makes a finished run stale


def test_run_settings_name_the_arm_radius_beta_recipe_and_predictor():
    cfg = ExperimentConfig(eps="8/255", steps=4, seeds=[0], predictor={"epochs": 2})
    plain = run_settings(cfg, RunSpec("pgd_at", Variant(), 0))
    assert "arm" not in plain and "train_eps" not in plain and "eps_ramp_epochs" not in plain  # as before
    half = run_settings(cfg, RunSpec("pgd_at", Variant(), 0, eps_factor=0.5))
    assert half["arm"] == "pgd_at@eps=0.5x" and half["train_eps"] == pytest.approx(4 / 255)
    assert half["train_alpha"] == pytest.approx(cfg.train_alpha / 2)
    beta = run_settings(cfg, RunSpec("trades", Variant(), 0, beta=1.0))
    assert beta["arm"] == "trades@beta=1" and beta["trades_beta"] == 1.0
    ramped = run_settings(cfg.replace(eps_ramp_epochs=3, augment=True), RunSpec("pgd_at", Variant(), 0))
    assert ramped["eps_ramp_epochs"] == 3 and ramped["augment"] is True and ramped != plain
    assert "flip" not in ramped  # the default (on), as every run before the knob: those stay finished
    crop_only = run_settings(cfg.replace(eps_ramp_epochs=3, augment=True, flip=False), RunSpec("pgd_at", Variant(), 0))
    assert crop_only == {**ramped, "flip": False}
    assert run_settings(cfg.replace(flip=False), RunSpec("pgd_at", Variant(), 0)) == plain  # no augment: no flip
    pred = RunSpec("sip_at", Variant.parse("predicted+unannotated=0.5"), 0)
    assert run_settings(cfg, pred)["predictor"] == {"epochs": 2}
    assert run_settings(cfg.replace(predictor={"epochs": 3}), pred) != run_settings(cfg, pred)
    with pytest.raises(ValueError, match="unknown predictor settings \\['seed'\\]"):
        ExperimentConfig(predictor={"seed": 1})


# ----------------------------------------------------------------------------------------------------------
# the maps of each variant


@pytest.fixture(scope="module")
def premise_train():
    return load_builtin("premise", split="train", seed=0, n_train=120, n_test=20)


def test_displaced_keeps_coverage_with_about_no_overlap_and_random_keeps_coverage(premise_train):
    base = MapSet.from_float(premise_train.salience)
    s = base.to_float()
    displaced = variant_maps(base, Variant.parse("human+displaced"), seed=0).to_float()
    assert torch.equal(coverage(displaced), coverage(s))
    assert float(overlap(s, displaced).mean()) < 0.01
    rand = variant_maps(base, Variant.parse("human+random"), seed=0).to_float()
    assert torch.equal(coverage(rand), coverage(s))
    assert float(overlap(s, rand).mean()) < 0.5  # at random: expected overlap = coverage (15-30 %)
    again = variant_maps(base, Variant.parse("human+random"), seed=0).to_float()
    assert torch.equal(again, rand) and not torch.equal(variant_maps(base, Variant.parse("human+random"), 1).values,
                                                        base.values)  # fmt: skip


def test_top_share_binarises_soft_maps_to_exactly_that_share_then_controls_keep_it():
    g = torch.Generator().manual_seed(0)
    soft = torch.rand(6, 1, 28, 28, generator=g)
    soft[2] = float("nan")  # no map: stays without one
    base = MapSet.from_float(soft)
    top = variant_maps(base, Variant.parse("gradcam+top=0.25"), seed=0)
    want = round(0.25 * 28 * 28) / (28 * 28)
    cov = top.coverage()
    assert torch.allclose(cov[top.has], torch.full((5,), want)) and not bool(top.has[2])
    for control in ("displaced", "random"):
        moved = variant_maps(base, Variant.parse(f"gradcam+top=0.25+{control}"), seed=0)
        assert torch.equal(moved.coverage(), cov)


def test_predicted_fills_exactly_the_images_without_human_maps(premise_train):
    human = MapSet.from_float(premise_train.salience)
    human = MapSet(human.values, human.has & (torch.arange(len(human)) % 4 != 0))  # a quarter never painted
    out = predicted_maps(premise_train, human, unannotated=0.5, seed=0, settings={"epochs": 1, "width": 8})
    kept = unannotate(human, 0.5, np.random.default_rng([0, 101]))  # what human+unannotated blanks
    assert torch.equal(out.predicted, ~kept.has) and bool(out.maps.has.all())
    assert torch.equal(out.maps.values[kept.has], human.values[kept.has])  # human maps kept as they were
    rec = out.record()
    assert rec["human"] == int(kept.has.sum())
    assert rec["predicted_images"] == torch.nonzero(~kept.has).flatten().tolist()
    blank = variant_maps(human, Variant.parse("human+unannotated=0.5"), seed=0)
    assert torch.equal(blank.has, kept.has)  # the same images as the human variant at that share
    with pytest.raises(ValueError, match="needs human maps to learn from"):
        predicted_maps(premise_train, MapSet(human.values, torch.zeros_like(human.has)), unannotated=0, seed=0,
                       settings={})  # fmt: skip


def test_the_cli_dry_run_lists_every_arm_of_the_fashion_config(tmp_path, capsys):
    from sipat.cli import main

    assert main(["experiment", "--config", str(CONFIGS / "fashion.json"), "--out", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    for run in ("pgd_at@eps=0.5x__none__seed0", "trades@beta=3__none__seed3", "clean_mix__gradcam+top=0.25__seed7",
                "sip_at__gradcam+top=0.25+displaced__seed7", "sip_trades__gradcam+top=0.25__seed1"):  # fmt: skip
        assert f"todo  {run}" in out
    assert "96 runs (0 finished)" in out  # 12 arms x 8 seeds
