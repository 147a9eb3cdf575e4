"""The k-curve of an experiment (issue 20): SIP-AT's clean and robust accuracy over k, the share of training images
with a human map, for each fill of the other images (none, Grad-CAM, predicted), and how many paintings reach 95 %
of what painting every image gives.

Why "of what painting gives" and not "of the accuracy at k = 100": the paintings buy the difference between SIP-AT
and PGD-AT (which uses no map); 95 % of SIP-AT's own accuracy is reached by PGD-AT already when the gain is small.
So k reaches when its clean gain over ``pgd_at`` is at least 95 % of the gain at k = 100 while its robust accuracy
stays at least 95 % of k = 100's (clean accuracy at kept robustness). Means over the seeds that ran every arm.
"""

from __future__ import annotations

import csv
from pathlib import Path
from statistics import fmean
from typing import Any

from sipat.experiment.arms import Variant
from sipat.experiment.config import ExperimentConfig
from sipat.experiment.decide import robust_eps, robust_value
from sipat.experiment.store import _atomic_write

FILL_NAMES = ("none", "gradcam", "predicted")


def curve_point(variant: str) -> tuple[int, str] | None:
    """(k in %, fill) of an unmoved, unbinarised human-map variant; None for any other variant. k = 100 (the plain
    ``human`` variant) belongs to every fill."""
    v = Variant.parse(variant)
    if v.source not in ("human", "predicted") or v.top is not None or v.control is not None:
        return None
    if v.source == "predicted" and not v.unannotated:
        return None  # the k = 100 point is the plain human variant
    k = round(100 * (1 - v.unannotated))
    fill = "predicted" if v.source == "predicted" else (v.fill or "none")
    return k, fill


def kcurve_table(cfg: ExperimentConfig, payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """{"points": {(k, fill): {seed: (clean, robust)}}, "pgd_at": {seed: (clean, robust)}, "eps": robust eps}
    from ``sip_at`` runs of the curve's variants and the plain ``pgd_at`` anchor; diverged runs left out."""
    eps = robust_eps(cfg)
    points: dict[tuple[int, str], dict[int, tuple[float, float]]] = {}
    anchor: dict[int, tuple[float, float]] = {}
    for p in payloads:
        if p.get("diverged"):
            continue
        value = (float(p["clean_acc"]), robust_value(cfg, p, eps))
        if p.get("arm", p["method"]) == "pgd_at":
            anchor[int(p["seed"])] = value
        elif p.get("arm", p["method"]) == "sip_at" and (point := curve_point(p["variant"])) is not None:
            fills = FILL_NAMES if point[0] == 100 else (point[1],)
            for fill in fills:
                points.setdefault((point[0], fill), {})[int(p["seed"])] = value
    return {"points": points, "pgd_at": anchor, "eps": eps}


def _mean(cells: dict[int, tuple[float, float]], seeds: list[int], i: int) -> float:
    return fmean(cells[s][i] for s in seeds)


def paintings_needed(table: dict[str, Any], fill: str, share: float = 0.95) -> tuple[int | None, str]:
    """The least k whose clean gain over pgd_at reaches ``share`` of k = 100's at >= ``share`` of its robust
    accuracy (means over seeds that ran pgd_at and both k's), and why; None when no k reaches or no gain exists."""
    points, anchor = table["points"], table["pgd_at"]
    full = points.get((100, fill))
    if full is None or not anchor:
        return None, "needs the k = 100 (human) and pgd_at runs"
    ks = sorted(k for k, f in points if f == fill)
    for k in ks:
        seeds = sorted(set(anchor) & set(full) & set(points[k, fill]))
        if not seeds:
            continue
        gain_full = _mean(full, seeds, 0) - _mean(anchor, seeds, 0)
        if gain_full <= 0:
            return None, f"painting every image gives no clean gain over pgd_at ({gain_full:+.4f})"
        gain = _mean(points[k, fill], seeds, 0) - _mean(anchor, seeds, 0)
        if gain >= share * gain_full and _mean(points[k, fill], seeds, 1) >= share * _mean(full, seeds, 1):
            return k, f"gain {gain:+.4f} of {gain_full:+.4f}, seeds {', '.join(map(str, seeds))}"
    return None, "no k reaches it"


def kcurve(cfg: ExperimentConfig, payloads: list[dict[str, Any]], out: str | Path) -> dict[str, Path]:
    """kcurve.md and kcurve.csv when the runs hold a curve (sip_at at k < 100 and at k = 100); else nothing."""
    table = kcurve_table(cfg, payloads)
    points = table["points"]
    if not any(k < 100 for k, _ in points) or not any(k == 100 for k, _ in points):
        return {}
    out = Path(out)
    n_train = max((int(p.get("n_train", 0)) for p in payloads), default=0)
    eps = table["eps"]
    lines = [f"# {cfg.name}: the k-curve (sip_at with human maps on k % of the training images)", "",
             f"Robust accuracy at eps {eps:.6g} (the worst evaluated attack); n_train {n_train}. "
             "Means over the seeds that ran, then each seed's value in seed order.", "",
             "| k % | fill | seeds | clean | robust | clean per seed | robust per seed |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    rows = []
    anchors = [("pgd_at", table["pgd_at"])] if table["pgd_at"] else []
    for (k, fill), cells in [*sorted(points.items()), *[((-1, name), c) for name, c in anchors]]:
        seeds = sorted(cells)
        clean, robust = _mean(cells, seeds, 0), _mean(cells, seeds, 1)
        per = [" ".join(f"{cells[s][i]:.3f}" for s in seeds) for i in (0, 1)]
        label = ("-", fill) if k < 0 else (str(k), fill)
        lines.append(f"| {label[0]} | {label[1]} | {len(seeds)} | {clean:.4f} | {robust:.4f} | {per[0]} | {per[1]} |")
        for s in seeds:
            rows.append([label[0], label[1], s, cells[s][0], cells[s][1]])
    lines += ["", "## How many paintings reach 95 % of what painting every image gives", "",
              "(clean gain over pgd_at >= 95 % of k = 100's, robust accuracy >= 95 % of k = 100's)", ""]  # fmt: skip
    for fill in FILL_NAMES:
        if not any(f == fill and k < 100 for k, f in points):
            continue
        k_needed, why = paintings_needed(table, fill)
        where = f"k = {k_needed} % ({round(k_needed * n_train / 100)} images)" if k_needed is not None else "none"
        lines.append(f"- fill {fill}: {where}; {why}")
    files = {"kcurve": out / "kcurve.md", "kcurve_csv": out / "kcurve.csv"}
    _atomic_write(files["kcurve"], "\n".join(lines) + "\n")
    with files["kcurve_csv"].open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["k_percent", "fill", "seed", "clean_acc", f"robust_acc_eps={eps:.6g}"])
        writer.writerows(rows)
    return files


__all__ = ["curve_point", "kcurve", "kcurve_table", "paintings_needed"]
