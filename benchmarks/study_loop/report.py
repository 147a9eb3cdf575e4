"""report.md of a simulated study run: the curves by number of paintings, and active minus random paired over
seeds at each (a mean difference with a bootstrap interval, a t-test and a Wilcoxon test: `sipat.paired`)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from statistics import mean
from typing import Any

from sipat.paired import paired_difference

COLUMNS = ("images", "class_spread", "cc", "sim", "nss", "auc", "fill_cc", "ranking_heldout_cc")


def _mean(values: list[Any]) -> str:
    kept = [v for v in values if v is not None]
    if not kept:
        return "-"
    m = mean(kept)
    return f"{m:.3f}" if isinstance(m, float) and not m.is_integer() else f"{m:g}"


def _paired(active: list[float], random: list[float]) -> str:
    if len(active) < 2:
        return "one seed"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # equal differences: the summary says p = nan
        r = paired_difference(active, random)
    tests = f"t p={r.t_pvalue:.2g}, W p={r.wilcoxon_pvalue:.2g}, n={r.n}"
    return f"{r.mean:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}] ({tests})"


def lines(rows: list[dict[str, Any]], config: dict[str, Any], seconds: float) -> list[str]:
    seeds = sorted({r["seed"] for r in rows})
    points = sorted({r["paintings"] for r in rows if r["pool"] in ("random", "active")})
    out = [
        "# A simulated study through the web loop: active vs random choice of what people paint",
        "",
        f"Config: `{json.dumps(config)}`; {len(seeds)} seeds, {seconds:.0f} s of run time (the seeds' sum).",
        "",
        "Means over seeds. `cc` .. `auc`: a predictor trained on the study's stored paintings, on held-out test "
        "images against other simulated people's mean painting; `fill_cc`: the training maps SIP-AT would get "
        "(paintings, predictions elsewhere) against every training image's mean painting; `ranking_heldout_cc`: "
        "the newest ranking job's own held-out CC, as the dashboard shows it (scored on the pool's own images).",
        "",
        "| pool | paintings | " + " | ".join(COLUMNS) + " |",
        "|---|---|" + "---|" * len(COLUMNS),
    ]
    for pool in ("centre prior", "uniform"):
        got = [r for r in rows if r["pool"] == pool]
        cells = [_mean([r.get(c) for r in got]) if c in got[0] else "-" for c in COLUMNS] if got else []
        out.append(f"| {pool} | 0 | " + " | ".join(cells) + " |")
    for pool in ("random", "active"):
        for p in points:
            got = [r for r in rows if r["pool"] == pool and r["paintings"] == p]
            out.append(f"| {pool} | {p} | " + " | ".join(_mean([r.get(c) for r in got]) for c in COLUMNS) + " |")
    out += [
        "",
        "Active minus random, paired over seeds (same people, same images, same test set):",
        "",
        "| paintings | CC | fill CC |",
        "|---|---|---|",
    ]
    for p in points:
        by = {
            pool: {r["seed"]: r for r in rows if r["pool"] == pool and r["paintings"] == p}
            for pool in ("random", "active")
        }
        both = [s for s in seeds if s in by["random"] and s in by["active"]]
        cells = [
            _paired([by["active"][s][c] for s in both], [by["random"][s][c] for s in both]) for c in ("cc", "fill_cc")
        ]
        out.append(f"| {p} | " + " | ".join(cells) + " |")
    return out


def write_report(path: Path, rows: list[dict[str, Any]], config: dict[str, Any], seconds: float) -> None:
    path.write_text("\n".join(lines(rows, config, seconds)) + "\n")
