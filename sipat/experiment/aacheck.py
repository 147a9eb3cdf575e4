"""AutoAttack on a fixed subset of the test set, for an experiment's saved models (``sipat experiment
--autoattack-check N``): how far the experiment's own, cheaper attack flatters each arm's robustness, measured on
the same images by both.

Why: the standard ensemble (APGD-CE, APGD-T and FAB-T with 9 targets, Square with 5,000 queries, each on the
points still robust) costs about 25 minutes per robust ``cnn32`` model on 2,000 images on one CPU core, so an
88-run CPU experiment cannot afford it for every run. If the cheap column lowers every arm by about the same
amount, the experiment's comparisons hold under AutoAttack; if it flatters one arm more (gradient masking), they
do not, and this table says by how much. The full evaluation belongs on a GPU (``eval_attacks: ["autoattack"]``).

The subset is seeded by the data seed (the same images for every run of one data draw), the ensemble runs at the
published budget (`sipat.attacks.registry.AttackBudget` defaults) with unmasked perturbations at the decision's
radius (`sipat.experiment.decide.robust_eps`). Results are cached per run in ``autoattack_check/`` (resumable).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from statistics import fmean
from typing import Any

from sipat.attacks.registry import AttackBudget
from sipat.checkpoints import atomic_write_text
from sipat.experiment.config import ExperimentConfig, plan_runs
from sipat.experiment.datasets import load_data, subset
from sipat.experiment.decide import robust_eps
from sipat.experiment.store import _read_json


def _check_run(
    cfg: ExperimentConfig, model_path: Path, test: Any, eps: float, device: str | None, budget: AttackBudget
) -> dict[str, Any]:
    from sipat.checkpoints import load_model
    from sipat.evaluation import evaluate

    model, _ = load_model(model_path)
    began = time.perf_counter()
    cheap = evaluate(model, test, eps_grid=[eps], attacks=cfg.eval_attacks, pgd_steps=cfg.eval_pgd_steps,
                     apgd_steps=cfg.eval_apgd_steps, device=device, checks=False)  # fmt: skip
    cheap_s = time.perf_counter() - began
    full = evaluate(model, test, eps_grid=[eps], attacks=["autoattack"], device=device, budget=budget)
    key, cheap_acc, full_acc = f"{eps:.6g}", cheap.to_dict()["robust_acc"], full.to_dict()["robust_acc"]
    return {
        "clean_acc": full.clean_acc,
        "cheap": min(cheap_acc[a][key] for a in cfg.eval_attacks),
        "autoattack": full_acc["autoattack"][key],
        "stages": {k: v[key] for k, v in full_acc.items() if k.startswith("autoattack/")},
        "warnings": list(full.warnings),
        "cheap_s": round(cheap_s, 1),
        "autoattack_s": round(time.perf_counter() - began - cheap_s, 1),
    }


def autoattack_check(
    cfg: ExperimentConfig,
    out: str | Path,
    *,
    limit: int,
    seeds: Sequence[int] | None = None,
    device: str | None = None,
    budget: AttackBudget | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Path]:
    """Evaluate the saved models (``models/<run>.pt``; ``save_models`` on) of ``seeds`` on ``limit`` test images
    with the experiment's attacks and with AutoAttack; write autoattack_check.md and .csv. Runs without a saved
    model are listed as missing, not evaluated. ``budget``: the ensemble's iterations and queries (default: the
    published ones; a cache made with another budget is not reused)."""
    if limit < 1:
        raise ValueError(f"the AutoAttack check needs at least one test image; got {limit}")
    out = Path(out)
    eps = robust_eps(cfg)
    chosen = set(cfg.seeds if seeds is None else seeds)
    budget = budget or AttackBudget()
    tag = "" if budget == AttackBudget() else "__budget" + "-".join(str(v) for v in dataclasses.astuple(budget))
    rows: list[tuple[str, int, dict[str, Any]]] = []
    missing: list[str] = []
    tests: dict[int, Any] = {}
    for run in [r for r in plan_runs(cfg) if r.seed in chosen]:
        model_path = out / "models" / f"{run.run_id}.pt"
        cache = out / "autoattack_check" / f"{run.run_id}__n{limit}{tag}.json"
        result = _read_json(cache)
        if result is None:
            if not model_path.is_file():
                missing.append(run.run_id)
                continue
            data_seed = run.seed if cfg.data_seed is None else cfg.data_seed
            if data_seed not in tests:
                tests[data_seed] = subset(load_data(cfg, "test", data_seed), limit, data_seed + 2)
            log(f"{run.run_id}: AutoAttack on {limit} test images")
            result = _check_run(cfg, model_path, tests[data_seed], eps, device, budget)
            atomic_write_text(cache, json.dumps(result, indent=1))
            log(f"{run.run_id}: clean {result['clean_acc']:.3f}, {'/'.join(cfg.eval_attacks)} {result['cheap']:.3f}, "
                f"AutoAttack {result['autoattack']:.3f} ({result['autoattack_s']:.0f} s)")  # fmt: skip
        label = run.arm.name if run.variant.source == "none" else f"{run.arm.name} [{run.variant.name}]"
        rows.append((label, run.seed, result))
    return _write(cfg, out, rows, missing, limit, eps)


def _write(cfg: ExperimentConfig, out: Path, rows: list[tuple[str, int, dict[str, Any]]], missing: list[str],
           limit: int, eps: float) -> dict[str, Path]:  # fmt: skip
    cheap = f"min over {', '.join(cfg.eval_attacks)} (the experiment's evaluation)"
    lines = [f"# {cfg.name}: AutoAttack check on {limit} test images at eps {eps:.6g}", "",
             f"*cheap*: {cheap}; *AutoAttack*: the standard ensemble's per-sample worst case, unmasked. "
             "*gap*: cheap minus AutoAttack (how much the experiment's column flatters the arm), mean over seeds, "
             "then the per-seed gaps. The same images for every run.", "",
             "| arm | seeds | clean | cheap | AutoAttack | gap | gap per seed | AutoAttack s/run |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    by_arm: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for label, seed, r in rows:
        by_arm.setdefault(label, []).append((seed, r))
    for label, cells in by_arm.items():
        gaps = [r["cheap"] - r["autoattack"] for _, r in cells]
        lines.append(
            f"| {label} | {len(cells)} | {fmean(r['clean_acc'] for _, r in cells):.3f} | "
            f"{fmean(r['cheap'] for _, r in cells):.3f} | {fmean(r['autoattack'] for _, r in cells):.3f} | "
            f"{fmean(gaps):+.3f} | {' '.join(f'{g:+.3f}' for g in gaps)} | "
            f"{fmean(r['autoattack_s'] for _, r in cells):.0f} |"
        )
    warned = sorted({w for _, _, r in rows for w in r.get("warnings", [])})
    lines += ["", "Sanity-check warnings: " + ("; ".join(warned) if warned else "none.")]
    if missing:
        lines += ["", f"Not checked (no saved model; run with save_models on): {', '.join(missing)}."]
    files = {"autoattack_check": out / "autoattack_check.md", "autoattack_check_csv": out / "autoattack_check.csv"}
    atomic_write_text(files["autoattack_check"], "\n".join(lines) + "\n")
    with files["autoattack_check_csv"].open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["arm", "seed", "n", "clean_acc", "cheap", "autoattack", "gap"])
        for label, seed, r in rows:
            gap = r["cheap"] - r["autoattack"] if not math.isnan(r["autoattack"]) else math.nan
            writer.writerow([label, seed, limit, r["clean_acc"], r["cheap"], r["autoattack"], gap])
    return files


__all__ = ["autoattack_check"]
