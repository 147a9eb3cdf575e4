"""The decisive experiment end to end at a tiny scale (one arm of each kind on `premise`), and the decision
report's paired statistics on constructed per-seed numbers whose answer is known."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from sipat.experiment import ExperimentConfig, decide, plan_runs, run_experiment

TINY = dict(
    name="tiny-decisive",
    dataset="premise",
    dataset_params={"n_train": 120, "n_test": 60, "clutter": 2},
    data_seed=0,
    arch="cnn32",
    epochs=1,
    steps=2,
    eps="8/255",
    lr=0.01,
    eps_ramp_epochs=1,
    grad_clip=10.0,
    seeds=[0, 1],
    methods=["pgd_at", "pgd_at@eps=0.5x", "trades@beta=1", "sip_at", "clean_mix@human"],
    variants=["human", "human+displaced", "human+random", "predicted+unannotated=0.5", "gradcam+top=0.25"],
    predictor={"epochs": 1, "width": 8},
    reference_epochs=1,
    eval_eps=[0, "8/255"],
    eval_attacks=["pgd"],
    eval_pgd_steps=2,
    eval_masked=False,
    eval_limit=40,
    save_models=False,
)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("decisive")
    cfg = ExperimentConfig.from_dict(TINY)
    files = run_experiment(cfg, out, device="cpu", progress=False, log=lambda _m: None)
    runs = {p.stem: json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))}
    return cfg, out, files, runs


def test_every_arm_runs_and_its_record_names_what_it_trained_with(tiny):
    cfg, _, files, runs = tiny
    assert sorted(runs) == sorted(r.run_id for r in plan_runs(cfg)) and len(runs) == 2 * 9
    for s in (0, 1):
        full, half = runs[f"pgd_at__none__seed{s}"], runs[f"pgd_at@eps=0.5x__none__seed{s}"]
        assert full["train_config"]["eps"] == pytest.approx(8 / 255) == 2 * half["train_config"]["eps"]
        assert half["train_config"]["alpha"] == pytest.approx(full["train_config"]["alpha"] / 2)
        assert (half["arm"], half["method"], half["eps_factor"]) == ("pgd_at@eps=0.5x", "pgd_at", 0.5)
        beta = runs[f"trades@beta=1__none__seed{s}"]
        assert beta["train_config"]["trades_beta"] == 1.0 == beta["trades_beta"] and cfg.trades_beta == 6.0
    with open(files["csv"], newline="") as f:
        rows = {(r["method"], r["variant"]) for r in csv.DictReader(f)}
    assert {("pgd_at@eps=0.5x", "none"), ("trades@beta=1", "none"), ("sip_at", "human+displaced")} <= rows


def test_controls_keep_the_coverage_and_top_share_fixes_it(tiny):
    _, _, _, runs = tiny
    for s in (0, 1):
        human = runs[f"sip_at__human__seed{s}"]["salient_share"]
        assert 0.1 < human < 0.35
        for control in ("displaced", "random"):
            assert runs[f"sip_at__human+{control}__seed{s}"]["salient_share"] == pytest.approx(human, abs=1e-9)
        assert runs[f"clean_mix__human__seed{s}"]["clean_share"] == pytest.approx(human, abs=1e-9)
        assert runs[f"sip_at__gradcam+top=0.25__seed{s}"]["salient_share"] == pytest.approx(0.25)


def test_the_predicted_run_records_which_image_got_which_source(tiny):
    _, _, _, runs = tiny
    for s in (0, 1):
        rec = runs[f"sip_at__predicted+unannotated=0.5__seed{s}"]
        src = rec["map_source"]
        assert (src["human"], src["predicted"], len(src["predicted_images"])) == (60, 60, 60)
        assert rec["annotated_share"] == 1.0 and rec["settings"]["predictor"] == {"epochs": 1, "width": 8}
        assert runs[f"sip_at__human__seed{s}"]["map_source"] is None


def test_the_decision_report_traces_the_frontier_and_names_the_controls(tiny):
    cfg, out, files, _ = tiny
    md = files["decision"].read_text()
    assert "PGD-AT frontier: pgd_at@eps=0.5x, pgd_at; seeds with every radius: 0, 1" in md  # no standard arm
    for control in ("displaced: sip_at [human+displaced]", "random: sip_at [human+random]",
                    "clean_mix: clean_mix [human]"):  # fmt: skip
        assert f"| sip_at [human] | {control} |" in md
    with open(files["decision_seeds"], newline="") as f:
        assert len(list(csv.DictReader(f))) == 2 * 9
    assert files["frontier"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again: list[str] = []
    run_experiment(cfg, out, device="cpu", progress=False, log=again.append)  # resumes: nothing to redo
    assert again[0].startswith("18 of 18 runs already finished")


# ----------------------------------------------------------------------------------------------------------
# the decision's statistics on numbers with a known answer


def _payload(arm: str, variant: str, seed: int, clean: float, robust: float) -> dict:
    return {"method": arm.split("@")[0], "arm": arm, "variant": variant, "seed": seed, "clean_acc": clean,
            "robust_acc": {"pgd": {"0.1": robust}, "apgd": {"0.1": robust + 0.01}}}  # fmt: skip


def test_an_arm_above_the_frontier_beats_its_controls_and_one_below_does_not(tmp_path: Path):
    cfg = ExperimentConfig(eps=0.1, eval_eps=[0, 0.1], eval_attacks=["pgd", "apgd"], seeds=list(range(8)))
    rng = np.random.default_rng(0)
    payloads = []
    for s in range(8):
        shift = rng.normal(0, 0.02)  # seed noise shared by every arm of the seed: what pairing removes
        for arm, clean, robust in (("pgd_at@eps=0.5x", 0.90, 0.30), ("pgd_at@eps=0.75x", 0.85, 0.40),
                                   ("pgd_at", 0.80, 0.50)):  # fmt: skip
            payloads.append(_payload(arm, "none", s, clean + shift, robust))
        # at robust 0.45 the frontier's clean accuracy is 0.825: sip_at lies 6 points above it, the controls on it
        for arm, variant, clean in (("sip_at", "human", 0.885), ("sip_at", "human+displaced", 0.825),
                                    ("sip_at", "human+random", 0.82), ("clean_mix", "human", 0.825),
                                    ("sip_trades", "human", 0.70)):  # fmt: skip
            payloads.append(_payload(arm, variant, s, clean + shift + rng.normal(0, 0.005), 0.45))
    files = decide(cfg, payloads, tmp_path)
    md = files["decision"].read_text()
    margins = md.split("## Frontier margins")[1].split("## Against")[0]
    rows = {line.split(" | ")[0].lstrip("| "): line for line in margins.splitlines() if line.startswith("| ")}
    assert "min over pgd, apgd" in md  # the robust metric: the least over the attacks
    assert "| above |" in rows["sip_at [human]"] and "| below |" in rows["sip_trades [human]"]
    assert rows["sip_at [human]"].split(" | ")[4].startswith("+6.")  # the margin, in points
    controls = [line for line in md.split("## Against")[1].splitlines() if line.startswith("| sip_at [human] |")]
    assert len(controls) == 3
    for line in controls:  # 6 points of margin over each control; all 8 seeds agree: Wilcoxon's least p, 2/256
        _, _, frontier, margin, clean, robust = line.strip(" |").split(" | ")
        assert frontier == "PGD-AT"
        assert margin.startswith(("+6.", "+5.9")) and "W p=0.00781" in margin
        # equal robustness, so the direct clean difference says the same without the frontier
        assert clean.startswith(("+6.", "+5.9")) and "W p=0.00781" in clean and robust.startswith(("+0.00", "n/a"))


def test_standard_is_the_frontiers_radius_zero_end(tmp_path: Path):
    """An arm a little less robust than the smallest PGD-AT radius is measured against the line to `standard`."""
    cfg = ExperimentConfig(eps=0.1, eval_eps=[0, 0.1], eval_attacks=["pgd"], seeds=list(range(8)))
    rng = np.random.default_rng(1)
    payloads = []
    for s in range(8):
        for arm, clean, robust in (("standard", 0.95, 0.0), ("pgd_at@eps=0.5x", 0.90, 0.30), ("pgd_at", 0.80, 0.50)):
            payloads.append(_payload(arm, "none", s, clean, robust))
        # at robust 0.15 the line from standard (0.95, 0) to 0.5x (0.90, 0.30) is at 0.925: 1.5 points below it
        payloads.append(_payload("sip_at", "human", s, 0.91 + rng.normal(0, 0.002), 0.15))
    md = decide(cfg, payloads, tmp_path)["decision"].read_text()
    assert "PGD-AT frontier: standard, pgd_at@eps=0.5x, pgd_at;" in md and "zero end" in md
    row = next(line for line in md.splitlines() if line.startswith("| sip_at [human] |"))
    assert "| below |" in row and row.split(" | ")[4].startswith("-1.")


def test_each_masked_arm_is_paired_with_the_unmasked_method_it_changes(tmp_path: Path):
    """sip_trades at beta 1 against TRADES at beta 1 (not PGD-AT); sip_at against PGD-AT; missing base: PGD-AT."""
    cfg = ExperimentConfig(eps=0.1, eval_eps=[0, 0.1], eval_attacks=["pgd"], seeds=list(range(8)))
    payloads = []
    for s in range(8):
        for arm, clean, robust in (("pgd_at@eps=0.5x", 0.90, 0.30), ("pgd_at", 0.80, 0.50),
                                   ("trades@beta=1", 0.70, 0.45)):  # fmt: skip
            payloads.append(_payload(arm, "none", s, clean, robust))
        payloads.append(_payload("sip_trades@beta=1", "human", s, 0.75 + 0.001 * s, 0.45))
        payloads.append(_payload("sip_trades", "human", s, 0.72 + 0.001 * s, 0.45))  # beta 6: its TRADES never ran
        payloads.append(_payload("sip_at", "human", s, 0.83 + 0.001 * s, 0.45))
    md = decide(cfg, payloads, tmp_path)["decision"].read_text()
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in md.splitlines() if line.startswith("| ")}
    assert rows["sip_trades@beta=1 [human]"][6] == "trades@beta=1"
    assert rows["sip_trades@beta=1 [human]"][7].startswith("+5.3")  # 0.7535 - 0.70, in points
    assert rows["sip_at [human]"][6] == "pgd_at" and rows["sip_at [human]"][7].startswith("+3.3")
    assert rows["sip_trades [human]"][6] == "pgd_at"


def test_sip_trades_is_measured_on_the_trades_frontier_too(tmp_path: Path):
    """TRADES at several betas traces its own frontier (standard = beta 0); sip_trades gets a margin on it, and its
    controls are compared there; the report works without any PGD-AT arm."""
    cfg = ExperimentConfig(eps=0.1, eval_eps=[0, 0.1], eval_attacks=["pgd"], seeds=list(range(8)), trades_beta=6.0)
    rng = np.random.default_rng(2)
    payloads = []
    for s in range(8):
        shift = rng.normal(0, 0.02)
        for arm, clean, robust in (("standard", 0.95, 0.0), ("trades@beta=1", 0.90, 0.30), ("trades", 0.80, 0.50),
                                   ("trades@beta=12", 0.70, 0.55)):  # fmt: skip
            payloads.append(_payload(arm, "none", s, clean + shift, robust))
        # at robust 0.40 the TRADES frontier (0.90, 0.30)-(0.80, 0.50) is at 0.85: sip_trades 4 points above it
        for variant, clean in (("human", 0.89), ("human+displaced", 0.85), ("human+random", 0.845)):
            payloads.append(_payload("sip_trades", variant, s, clean + shift + rng.normal(0, 0.003), 0.40))
    md = decide(cfg, payloads, tmp_path)["decision"].read_text()
    assert "TRADES frontier: standard, trades@beta=1, trades, trades@beta=12; seeds with every beta: 0, 1" in md
    assert "## Frontier margins" not in md  # no PGD-AT radii ran: no PGD-AT table
    # with PGD-AT radii too, TRADES at each beta is also measured against PGD-AT, sip_trades on both frontiers
    for s in range(8):
        for arm, clean, robust in (("pgd_at@eps=0.5x", 0.88, 0.30), ("pgd_at", 0.78, 0.50)):
            payloads.append(_payload(arm, "none", s, clean, robust))
    both = decide(cfg, payloads, tmp_path)["decision"].read_text()
    pgd = both.split("## Frontier margins")[1].split("## TRADES frontier margins")[0]
    assert all(f"| {arm} | 8 |" in pgd for arm in ("trades@beta=1", "trades", "sip_trades [human]"))
    assert "| sip_trades [human] | 8 |" in both.split("## TRADES frontier margins")[1]
    section = md.split("## TRADES frontier margins")[1].split("## Against")[0]
    row = next(line for line in section.splitlines() if line.startswith("| sip_trades [human] |"))
    assert "| above |" in row and row.split(" | ")[4].startswith(("+4.", "+3.9"))
    assert row.split(" | ")[6] == "trades"  # base: TRADES at the same beta
    controls = [line for line in md.split("## Against")[1].splitlines() if line.startswith("| sip_trades [human] |")]
    assert len(controls) == 2
    for line in controls:  # 4 points over displaced, 4.5 over random, on the TRADES frontier
        _, _, frontier, margin, _clean, _robust = line.strip(" |").split(" | ")
        assert frontier == "TRADES" and 3.4 < float(margin.split()[0]) < 5.1 and "W p=0.00781" in margin
