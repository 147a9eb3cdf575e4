"""The k-curve of an experiment (issue 20): SIP-AT's clean and robust accuracy over k, the share of training images
with a human map, for each fill of the other images (none, Grad-CAM, predicted) and each choice of the painted
images (random, active), with the quality of the maps trained with (`sipat.experiment.quality`: on the images
without a kept human map, and of the kept human maps, against the exact masks), and how many paintings reach
95 % of what painting every image gives, per (fill, choice).

Why "of what painting gives" and not "of the accuracy at k = 100": the paintings buy the difference between SIP-AT
and PGD-AT (which uses no map); 95 % of SIP-AT's own accuracy is reached by PGD-AT already when the gain is small.
So k reaches when its clean gain over ``pgd_at`` is at least 95 % of the gain at k = 100 while its robust accuracy
stays at least 95 % of k = 100's (clean accuracy at kept robustness). Means over the seeds that ran every arm.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path
from statistics import fmean
from typing import Any

from sipat.checkpoints import atomic_write_text
from sipat.experiment.arms import CHOICES, Variant
from sipat.experiment.config import ExperimentConfig
from sipat.experiment.decide import _fmt, _safe, robust_eps, robust_value
from sipat.paired import paired_difference

FILL_NAMES = ("none", "gradcam", "predicted")
#: map-quality columns: (group, measure) of a run's ``map_quality`` (see `sipat.experiment.quality`)
QUALITY = (("filled", "cc"), ("filled", "iou"), ("kept", "cc"), ("kept", "iou"))


def curve_point(variant: str) -> tuple[int, str, str] | None:
    """(k in %, fill, choice) of an unmoved, unbinarised human-map variant; None for any other variant. k = 100
    (the plain ``human`` variant) belongs to every fill and choice."""
    v = Variant.parse(variant)
    if v.source not in ("human", "predicted") or v.top is not None or v.control is not None:
        return None
    if v.source == "predicted" and not v.unannotated:
        return None  # the k = 100 point is the plain human variant
    k = round(100 * (1 - v.unannotated))
    fill = "predicted" if v.source == "predicted" else (v.fill or "none")
    return k, fill, v.choice


def _quality(p: dict[str, Any]) -> tuple[float, ...]:
    q = p.get("map_quality") or {}
    return tuple(float(q.get(group, {}).get(m, math.nan)) for group, m in QUALITY)


def kcurve_table(cfg: ExperimentConfig, payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """{"points": {(k, fill, choice): {seed: (clean, robust)}}, "quality": {(k, fill, choice): {seed: the `QUALITY`
    values (NaN where not measured)}}, "pgd_at": {seed: (clean, robust)}, "eps": robust eps} from ``sip_at`` runs
    of the curve's variants and the plain ``pgd_at`` anchor; diverged runs left out."""
    eps = robust_eps(cfg)
    points: dict[tuple[int, str, str], dict[int, tuple[float, float]]] = {}
    quality: dict[tuple[int, str, str], dict[int, tuple[float, ...]]] = {}
    anchor: dict[int, tuple[float, float]] = {}
    for p in payloads:
        if p.get("diverged"):
            continue
        value = (float(p["clean_acc"]), robust_value(cfg, p, eps))
        if p.get("arm", p["method"]) == "pgd_at":
            anchor[int(p["seed"])] = value
        elif p.get("arm", p["method"]) == "sip_at" and (point := curve_point(p["variant"])) is not None:
            keys = [(100, f, c) for f in FILL_NAMES for c in CHOICES] if point[0] == 100 else [point]
            for key in keys:
                points.setdefault(key, {})[int(p["seed"])] = value
                quality.setdefault(key, {})[int(p["seed"])] = _quality(p)
    return {"points": points, "quality": quality, "pgd_at": anchor, "eps": eps}


def _mean(cells: Mapping[int, tuple[float, ...]], seeds: list[int], i: int) -> float:
    return fmean(cells[s][i] for s in seeds)


def paintings_needed(
    table: dict[str, Any], fill: str, choice: str = "random", share: float = 0.95
) -> tuple[int | None, str]:
    """The least k whose clean gain over pgd_at reaches ``share`` of k = 100's at >= ``share`` of its robust
    accuracy (means over seeds that ran pgd_at and both k's), for one fill and choice, and why; None when no k
    reaches or no gain exists."""
    points, anchor = table["points"], table["pgd_at"]
    full = points.get((100, fill, choice))
    if full is None or not anchor:
        return None, "needs the k = 100 (human) and pgd_at runs"
    ks = sorted(k for k, f, c in points if (f, c) == (fill, choice))
    for k in ks:
        cells = points[k, fill, choice]
        seeds = sorted(set(anchor) & set(full) & set(cells))
        if not seeds:
            continue
        gain_full = _mean(full, seeds, 0) - _mean(anchor, seeds, 0)
        if gain_full <= 0:
            return None, f"painting every image gives no clean gain over pgd_at ({gain_full:+.4f})"
        gain = _mean(cells, seeds, 0) - _mean(anchor, seeds, 0)
        if gain >= share * gain_full and _mean(cells, seeds, 1) >= share * _mean(full, seeds, 1):
            return k, f"gain {gain:+.4f} of {gain_full:+.4f}, seeds {', '.join(map(str, seeds))}"
    return None, "no k reaches it"


def against_full(table: dict[str, Any], key: tuple[int, str, str]) -> tuple[str, str]:
    """(clean, robust) of k minus k = 100 for one curve point, paired over the seeds both ran (`sipat.paired`
    summaries with their number of seeds, or why there is none): whether a k is short of painting every image
    by more than seed noise, which the 95 % rule on means alone cannot say."""
    full = table["points"].get((100, key[1], key[2]), {})
    cells = table["points"][key]
    seeds = sorted(set(full) & set(cells))
    clean, robust = (
        _fmt(_safe(paired_difference, [cells[s][i] for s in seeds], [full[s][i] for s in seeds])) for i in (0, 1)
    )
    return clean, robust


def _cell(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.3f}"


def kcurve(cfg: ExperimentConfig, payloads: list[dict[str, Any]], out: str | Path) -> dict[str, Path]:
    """kcurve.md and kcurve.csv when the runs hold a curve (sip_at at k < 100 and at k = 100); else nothing.
    The k = 100 runs appear once (fill ``all``, choice ``-``): they belong to every fill and choice."""
    table = kcurve_table(cfg, payloads)
    points, quality = table["points"], table["quality"]
    if not any(k < 100 for k, _, _ in points) or not any(k == 100 for k, _, _ in points):
        return {}
    out = Path(out)
    n_train = max((int(p.get("n_train", 0)) for p in payloads), default=0)
    eps = table["eps"]
    lines = [f"# {cfg.name}: the k-curve (sip_at with human maps on k % of the training images)", "",
             f"Robust accuracy at eps {eps:.6g} (the worst evaluated attack); n_train {n_train}. "
             "Means over the seeds that ran, then each seed's value in seed order. Map quality against the exact "
             "masks (means over seeds; - where not measured): filled = the maps trained with on the images without "
             "a kept human map (no map counts as all zero), kept = the kept human maps; CC and IoU at the mask "
             "threshold.", "",
             "| k % | fill | choice | seeds | clean | robust | filled CC | filled IoU | kept CC | kept IoU "
             "| clean per seed | robust per seed |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    rows = []
    shown = [key for key in sorted(points) if key[0] < 100]
    full = next(((k, f, c) for k, f, c in sorted(points) if k == 100), None)
    entries = [(key, str(key[0]), key[1], key[2]) for key in shown]
    entries += [(full, "100", "all", "-")] if full is not None else []
    entries += [(None, "-", "pgd_at", "-")] if table["pgd_at"] else []
    for key, k_label, fill, choice in entries:
        cells = points[key] if key is not None else table["pgd_at"]
        qual = quality.get(key, {}) if key is not None else {}
        seeds = sorted(cells)
        clean, robust = _mean(cells, seeds, 0), _mean(cells, seeds, 1)
        per = [" ".join(f"{cells[s][i]:.3f}" for s in seeds) for i in (0, 1)]
        q = [fmean(qual[s][i] for s in seeds) if qual else math.nan for i in range(len(QUALITY))]
        lines.append(f"| {k_label} | {fill} | {choice} | {len(seeds)} | {clean:.4f} | {robust:.4f} | "
                     f"{' | '.join(_cell(v) for v in q)} | {per[0]} | {per[1]} |")  # fmt: skip
        for s in seeds:
            rows.append([k_label, fill, choice, s, *cells[s], *(qual[s] if qual else [math.nan] * len(QUALITY))])
    lines += ["", "## How many paintings reach 95 % of what painting every image gives", "",
              "(clean gain over pgd_at >= 95 % of k = 100's, robust accuracy >= 95 % of k = 100's; per fill and "
              "choice of the painted images)", ""]  # fmt: skip
    for fill in FILL_NAMES:
        for choice in CHOICES:
            if not any((f, c) == (fill, choice) and k < 100 for k, f, c in points):
                continue
            k_needed, why = paintings_needed(table, fill, choice)
            where = f"k = {k_needed} % ({round(k_needed * n_train / 100)} images)" if k_needed is not None else "none"
            lines.append(f"- fill {fill}, choice {choice}: {where}; {why}")
    lines += ["", "## Each k against painting every image (k minus k = 100, paired over seeds)", "",
              "Cells: mean paired difference [95 % BCa bootstrap interval] (paired t-test p, Wilcoxon signed-rank "
              "p, seeds), in percentage points; a k is short of full painting only where both tests reject 0.", "",
              "| k % | fill | choice | clean | robust |", "|---|---|---|---|---|"]  # fmt: skip
    for key in shown:
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {' | '.join(against_full(table, key))} |")
    files = {"kcurve": out / "kcurve.md", "kcurve_csv": out / "kcurve.csv"}
    atomic_write_text(files["kcurve"], "\n".join(lines) + "\n")
    with files["kcurve_csv"].open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["k_percent", "fill", "choice", "seed", "clean_acc", f"robust_acc_eps={eps:.6g}",
                         *(f"{group}_{m}" for group, m in QUALITY)])  # fmt: skip
        writer.writerows(rows)
    return files


__all__ = ["QUALITY", "against_full", "curve_point", "kcurve", "kcurve_table", "paintings_needed"]
