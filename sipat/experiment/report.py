"""The report of an experiment: mean and sample std over seeds per method and variant, as Markdown, CSV and a
plot of accuracy against eps (``results.md``, ``results.csv``, ``runs.csv``, ``accuracy_vs_eps.png``/``.svg``)."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sipat.checkpoints import atomic_write_text
from sipat.experiment.config import ExperimentConfig, plan_items, plan_runs
from sipat.experiment.decide import decide
from sipat.experiment.kcurve import kcurve
from sipat.experiment.store import _unperturbed, _value, arm_name, finished_runs
from sipat.vocabulary import eps_label, in_255ths


def _key(cfg: ExperimentConfig, attack: str, masked: bool, e: float) -> str:
    return f"{attack}{'_masked' if masked else ''}_eps={eps_label(e, in_255ths(cfg.eval_eps))}"


def _metric_columns(cfg: ExperimentConfig) -> list[tuple[str, str, bool, float | None]]:
    """(column key, attack, masked, eps) for every metric; clean accuracy first."""
    cols: list[tuple[str, str, bool, float | None]] = [("clean_acc", "", False, None)]
    for masked in (False, True) if cfg.eval_masked else (False,):
        for a in cfg.eval_attacks:
            for e in cfg.eval_eps:
                cols.append((_key(cfg, a, masked, e), a, masked, e))
    return cols


def summarise(cfg: ExperimentConfig, payloads: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (method, variant) in plan order: seeds, mean and sample std (ddof 1; NaN for one seed).

    Diverged runs (training loss became NaN) are counted in `diverged` and left out of the means and seeds.
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for arm, variant in plan_items(cfg):
        groups[(arm.name, variant.name)] = []
    for p in payloads:
        groups.setdefault((arm_name(p), p["variant"]), []).append(p)
    rows = []
    for (m, v), ps in groups.items():
        if not ps:
            continue
        diverged = [p for p in ps if p.get("diverged")]
        ps = sorted((p for p in ps if not p.get("diverged")), key=lambda p: p["seed"])
        row: dict[str, Any] = {
            "method": m,
            "variant": v,
            "n_seeds": len(ps),
            "seeds": " ".join(str(p["seed"]) for p in ps),
            "diverged": len(diverged),
        }
        shares = [_unperturbed(p) for p in ps or diverged]
        row["unperturbed_share"] = round(float(np.mean(shares)), 6)
        for key, a, masked, e in _metric_columns(cfg):
            vals = np.array([_value(p, a, masked, e) for p in ps], dtype=float)
            row[f"{key}_mean"] = round(float(vals.mean()), 6) if len(vals) else math.nan
            row[f"{key}_std"] = round(float(vals.std(ddof=1)), 6) if len(vals) > 1 else math.nan
        rows.append(row)
    return rows


def _diverged_note(n: int) -> str:
    return f" (+{n} diverged)" if n else ""


def _fmt(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.3f}" if math.isnan(std) else f"{mean:.3f} ± {std:.3f}"


def _markdown(cfg: ExperimentConfig, rows: list[dict[str, Any]], n_done: int, total: int, arch: str) -> str:
    t = cfg.train
    lines = [
        f"# Experiment `{cfg.name}` on {cfg.dataset}",
        "",
        f"{n_done} of {total} runs finished. Seeds {', '.join(map(str, cfg.seeds))}; arch {arch}; "
        f"{t.epochs} epochs, batch {t.batch_size}, lr {t.lr:g} (StepLR {t.lr_step}, {t.lr_gamma:g}); "
        f"training eps {eps_label(t.eps, in_255ths([t.eps]))}, {t.steps} PGD steps of {t.alpha:.4g}. "
        f"Evaluation on {'all' if cfg.eval_limit is None else cfg.eval_limit} test images. Cells: mean ± sample "
        "standard deviation over seeds; runs whose training diverged (loss NaN) are counted apart and left out. "
        "*unperturbed share*: the share of the perturbation budget left clean "
        "(sip_*: salient pixel coverage; clean_mix: the share of images trained clean).",
        "",
        "## Clean accuracy",
        "",
        "| method | variant | seeds | unperturbed share | clean accuracy |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['variant']} | {r['n_seeds']}{_diverged_note(r['diverged'])}"
            f" | {r['unperturbed_share']:.3f} | "
            f"{_fmt(r['clean_acc_mean'], r['clean_acc_std'])} |"
        )
    titles = {"pgd": f"PGD-{cfg.eval_pgd_steps}", "apgd": f"APGD-CE-{cfg.eval_apgd_steps}", "fgsm": "FGSM"}
    for masked in (False, True) if cfg.eval_masked else (False,):
        for a in cfg.eval_attacks:
            where = "masked: only non-salient pixels attacked" if masked else "unmasked"
            lines += ["", f"## Robust accuracy, {titles[a]} ({where})", ""]
            lines.append(
                "| method | variant | "
                + " | ".join(f"eps {eps_label(e, in_255ths(cfg.eval_eps))}" for e in cfg.eval_eps)
                + " |"
            )
            lines.append("|---|---|" + "---|" * len(cfg.eval_eps))
            for r in rows:
                cells = []
                for e in cfg.eval_eps:
                    key = _key(cfg, a, masked, e)
                    cells.append(_fmt(r[f"{key}_mean"], r[f"{key}_std"]))
                lines.append(f"| {r['method']} | {r['variant']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _plot(cfg: ExperimentConfig, rows: list[dict[str, Any]], stem: Path) -> list[Path]:
    from matplotlib import colormaps
    from matplotlib.figure import Figure  # no pyplot: no global backend; Figure renders PNG with Agg

    panels = [(a, m) for m in ((False, True) if cfg.eval_masked else (False,)) for a in cfg.eval_attacks]
    ncols = len(cfg.eval_attacks)
    nrows = len(panels) // ncols
    fig = Figure(figsize=(5.2 * ncols, 4.0 * nrows + 0.8), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    in_255 = in_255ths(cfg.eval_eps)
    xs = np.array([e * 255 if in_255 else e for e in cfg.eval_eps])
    palette = colormaps["tab10" if len(rows) <= 10 else "tab20"]
    colours = [palette(i % palette.N) for i in range(len(rows))]
    styles = {"standard": ":", "pgd_at": "--", "trades": "--", "sip_at": "-", "sip_trades": "-", "clean_mix": "-."}
    titles = {"pgd": f"PGD-{cfg.eval_pgd_steps}", "apgd": f"APGD-CE-{cfg.eval_apgd_steps}", "fgsm": "FGSM"}
    for ax, (a, masked) in zip(axes.flat, panels, strict=True):
        for i, r in enumerate(rows):
            keys = [_key(cfg, a, masked, e) for e in cfg.eval_eps]
            mean = np.array([r[f"{k}_mean"] for k in keys])
            std = np.nan_to_num(np.array([r[f"{k}_std"] for k in keys]))
            label = r["method"] if r["variant"] == "none" else f"{r['method']} ({r['variant']})"
            offset = (i - (len(rows) - 1) / 2) * 0.004 * (xs.max() - xs.min() or 1)  # keep error bars apart
            style = styles.get(r["method"].split("@")[0], "-")
            ax.errorbar(
                xs + offset, mean, yerr=std, label=label, color=colours[i], linestyle=style,
                marker="o", markersize=3, capsize=2, linewidth=1.2,
            )  # fmt: skip
        ax.set_title(f"{titles[a]}, {'masked (non-salient pixels)' if masked else 'unmasked'}")
        ax.set_xlabel("eps (x/255)" if in_255 else "eps")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(4, max(1, len(labels))), fontsize="small")
    fig.suptitle(f"{cfg.name} ({cfg.dataset}): accuracy vs eps, mean ± std over seeds")
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    fig.savefig(paths[0], dpi=150)
    fig.savefig(paths[1])
    return paths


def write_report(
    cfg: ExperimentConfig, out: str | Path, payloads: Sequence[dict[str, Any]], *, total: int | None = None
) -> dict[str, Path]:
    """results.md, results.csv, runs.csv and accuracy_vs_eps.png/.svg from finished runs' payloads."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not payloads:
        return {}
    rows = summarise(cfg, payloads)
    files = {"markdown": out / "results.md", "csv": out / "results.csv", "runs_csv": out / "runs.csv"}
    arch = ", ".join(sorted({p["arch"] for p in payloads}))
    atomic_write_text(files["markdown"], _markdown(cfg, rows, len(payloads), total or len(payloads), arch))
    with files["csv"].open("w", newline="", encoding="utf-8") as f:
        table = csv.DictWriter(f, fieldnames=list(rows[0]))
        table.writeheader()
        table.writerows(rows)
    cols = _metric_columns(cfg)
    with files["runs_csv"].open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "variant", "seed", "unperturbed_share", *[k for k, *_ in cols],
                         "train_seconds", "eval_seconds"])  # fmt: skip
        for p in sorted(payloads, key=lambda p: (arm_name(p), p["variant"], p["seed"])):
            writer.writerow([arm_name(p), p["variant"], p["seed"], round(_unperturbed(p), 6),
                             *[_value(p, a, m, e) for _, a, m, e in cols],
                             round(p["train_seconds"], 1), round(p["eval_seconds"], 1)])  # fmt: skip
    png, svg = _plot(cfg, rows, out / "accuracy_vs_eps")
    files.update(png=png, svg=svg)
    files.update(decide(cfg, payloads, out))  # with a frontier of >= 2 points (PGD-AT radii, TRADES betas)
    files.update(kcurve(cfg, list(payloads), out))  # with sip_at at k < 100 and k = 100: the k-curve
    return files


def report_only(cfg: ExperimentConfig, out: str | Path) -> dict[str, Path]:
    """Rewrite the report from the finished runs under ``out`` (nothing is trained)."""
    out = Path(out)
    runs = plan_runs(cfg)
    done = finished_runs(cfg, out, runs)
    if not done:
        raise ValueError(f"{out} holds no finished runs of this config; run the experiment first")
    return write_report(cfg, out, [done[r.run_id] for r in runs if r.run_id in done], total=len(runs))
