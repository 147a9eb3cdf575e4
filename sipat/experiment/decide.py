"""The decision report of an experiment (``decision.md``, ``decision_seeds.csv``, ``frontier.png``): is an arm
above the PGD-AT frontier, and does it beat its controls? Paired over seeds, with `sipat.paired`.

Why here and in this form: sparing pixels perturbs less, and perturbing less also buys clean accuracy. PGD-AT at
several radii (``pgd_at``, ``pgd_at@eps=0.75x``, ``pgd_at@eps=0.5x``) traces what "perturbing less" buys, per
seed; an arm's *margin* is its clean accuracy minus the frontier's at the arm's robust accuracy
(`sipat.paired.frontier_margin`). SIP-AT wins on a dataset only if its margin is significantly positive
(`frontier_check`: ``above``) *and* significantly larger than each control's (`compare_margins`): the same maps
displaced off the salient region, random maps, both at equal coverage, and ``clean_mix`` at the same unperturbed
share (docs/experiments-decisive.md, "The decision rule"). SIP-TRADES changes TRADES, whose own knob (beta)
also trades clean for robust accuracy: with TRADES at several betas it is measured on the TRADES frontier too,
and its controls are compared there. This module computes those numbers; it states no verdict about the paper
beyond what the tests say, and with few seeds the tests cannot reject anything.

The robust accuracy used is, per run, at the training eps (the largest evaluation eps not above it): the
``autoattack`` column (per-sample worst case) when evaluated, else the minimum over the evaluated attacks of
their accuracies, an upper bound on the per-sample worst case.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sipat.checkpoints import atomic_write_text
from sipat.experiment.arms import CONTROLS, Arm, Variant
from sipat.experiment.config import ExperimentConfig
from sipat.experiment.store import _value, arm_name
from sipat.paired import PairedResult, compare_margins, frontier_check, frontier_plot, paired_difference
from sipat.vocabulary import eps_label, in_255ths


def robust_eps(cfg: ExperimentConfig) -> float:
    """The evaluation eps of the decision: the largest of ``eval_eps`` not above the training eps (or the
    smallest positive one when all are above it)."""
    positive = [e for e in cfg.eval_eps if e > 0]
    if not positive:
        raise ValueError("the decision needs a robust accuracy: give eval_eps a radius > 0")
    below = [e for e in positive if e <= cfg.eps + 1e-12]
    return max(below) if below else min(positive)


def robust_value(cfg: ExperimentConfig, payload: dict[str, Any], eps: float) -> float:
    """A run's robust accuracy at ``eps``: AutoAttack's worst case, else the least over its attacks."""
    attacks = ["autoattack"] if "autoattack" in cfg.eval_attacks else list(cfg.eval_attacks)
    values = [_value(payload, a, False, eps) for a in attacks]
    return math.nan if any(math.isnan(v) for v in values) else min(values)  # a missing attack: no value


def _label(payload: dict[str, Any]) -> str:
    v = payload["variant"]
    return arm_name(payload) if v == "none" else f"{arm_name(payload)} [{v}]"


def _per_seed(cfg: ExperimentConfig, payloads: Sequence[dict[str, Any]], eps: float) -> dict[str, dict[int, tuple]]:
    """label -> seed -> (clean, robust), diverged runs left out."""
    table: dict[str, dict[int, tuple[float, float]]] = {}
    for p in payloads:
        if p.get("diverged"):
            continue
        table.setdefault(_label(p), {})[int(p["seed"])] = (float(p["clean_acc"]), robust_value(cfg, p, eps))
    return table


#: the frontiers traced: the unmasked method, its name and the knob that orders its points, "perturbing less"
#: first (PGD-AT by training radius, TRADES by beta; both at radius / beta 0 are standard training)
FRONTIERS = {"pgd_at": ("PGD-AT", "radius"), "trades": ("TRADES", "beta")}
#: the masked methods measured on a frontier of their own method as well as on PGD-AT's
OWN_FRONTIER = {"sip_trades": "trades"}


def _arm(label: str) -> Arm:
    """The arm of a table label (``sip_trades@beta=1 [human]`` -> its `Arm`), read by the arm names' one parser."""
    head, *mods = label.partition(" [")[0].split("@")
    return Arm.parse(head, mods, label)


def _frontier_labels(table: dict[str, dict[int, tuple]], method: str, default: float) -> list[str]:
    """The arms of `method`'s frontier ordered by their knob (`FRONTIERS`; ``default``: the knob's value when the
    label has no modifier, 1.0 for the radius factor, the config's beta for TRADES), led by ``standard`` when it
    ran: PGD-AT at radius 0, TRADES at beta 0, is standard training under the same recipe, and without that end an
    arm a little less robust than the first point lies "outside" the frontier. (The line from it to the first
    point is a chord under a concave frontier, so a margin measured on it flatters the arm; decision.md shows
    the points it used.) A TRADES frontier holds only TRADES at the training radius (no ``eps=`` modifier)."""

    def value(label: str) -> float | None:
        arm = _arm(label)
        if " [" in label or arm.method != method:
            return None  # an arm with maps, or another method
        if method == "pgd_at":
            return arm.eps_factor or default
        return None if arm.eps_factor is not None else (arm.beta or default)

    points = sorted((v, k) for k in table if (v := value(k)) is not None)
    return (["standard"] if points and "standard" in table else []) + [k for _, k in points]


#: the unmasked method each masked arm changes: its paired difference says what the maps change, beyond the method
BASE_METHOD = {"sip_at": "pgd_at", "sip_trades": "trades", "clean_mix": "pgd_at"}


def _base(label: str, table: dict[str, dict[int, tuple]]) -> str | None:
    """The arm's unmasked counterpart in ``table`` (``sip_trades@beta=1 [human]`` -> ``trades@beta=1``: same
    radius and beta), else ``pgd_at``; None when that did not run."""
    arm = _arm(label)
    base = dataclasses.replace(arm, method=BASE_METHOD[arm.method]).name if arm.method in BASE_METHOD else "pgd_at"
    return base if base in table else ("pgd_at" if "pgd_at" in table else None)


def _controls(label: str, table: dict[str, dict[int, tuple]]) -> list[tuple[str, str]]:
    """(control name, label) for an arm ``<arm> [<variant>]`` whose variant moves no map: the same arm with the
    variant displaced, random and shuffled, and clean_mix with the same variant and eps factor, where run."""
    arm, sep, variant = label.removesuffix("]").partition(" [")
    if not sep or arm.startswith("clean_mix") or Variant.parse(variant).moved:
        return []
    found = []
    for control in CONTROLS:
        moved = dataclasses.replace(Variant.parse(variant), control=control).name
        if f"{arm} [{moved}]" in table:
            found.append((control, f"{arm} [{moved}]"))
    mix = Arm("clean_mix", _arm(label).eps_factor).name
    if f"{mix} [{variant}]" in table:
        found.append(("clean_mix", f"{mix} [{variant}]"))
    return found


def _safe(fn: Callable[..., PairedResult], *args: Any) -> PairedResult | str:
    """``fn(*args)``, a paired result, or why there is none (too few seeds, an arm outside the frontier ...)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args)
    except (ValueError, FloatingPointError) as exc:
        return f"n/a ({exc})"


def _fmt(res: PairedResult | str) -> str:
    return res if isinstance(res, str) else res.summary()


@dataclasses.dataclass(frozen=True)
class _Frontier:
    """A traced frontier: its name, its points' labels in order, the seeds on which every point ran."""

    name: str
    labels: list[str]
    seeds: list[int]

    def clean(self, table: dict[str, dict[int, tuple]], seed: int) -> list[float]:
        return [table[r][seed][0] for r in self.labels]

    def robust(self, table: dict[str, dict[int, tuple]], seed: int) -> list[float]:
        return [table[r][seed][1] for r in self.labels]


def _traced(cfg: ExperimentConfig, table: dict[str, dict[int, tuple]]) -> dict[str, _Frontier]:
    """method -> its frontier, for each of `FRONTIERS` with at least two points in ``table``."""
    found = {}
    for method, (name, _knob) in FRONTIERS.items():
        labels = _frontier_labels(table, method, cfg.trades_beta if method == "trades" else 1.0)
        if len(labels) >= 2:
            seeds = sorted(set.intersection(*(set(table[r]) for r in labels)))
            found[method] = _Frontier(name, labels, seeds)
    return found


def _own_frontier(label: str, traced: dict[str, _Frontier]) -> _Frontier | None:
    """The frontier an arm's controls are compared on: its own method's (TRADES for sip_trades) when traced,
    else PGD-AT's."""
    own = OWN_FRONTIER.get(_arm(label).method)
    return traced.get(own) if own in traced else traced.get("pgd_at")


def _margin_row(arm: str, table: dict[str, dict[int, tuple]], front: _Frontier) -> str:
    """One row of a margins table: the arm's means, its margin over ``front`` and its paired base differences."""
    common = [s for s in front.seeds if s in table[arm]]
    if not common:
        return f"| {arm} | 0 | – | – | n/a | n/a | n/a | n/a | n/a |"
    c = [table[arm][s][0] for s in common]
    r = [table[arm][s][1] for s in common]
    margin, verdict = "n/a", "n/a"
    if len(common) >= 2:
        try:
            chk = frontier_check(
                c, r, [front.clean(table, s) for s in common], [front.robust(table, s) for s in common]
            )
            verdict = chk.verdict
            margin = _fmt(chk.result) if chk.result is not None else "outside the traced frontier"
        except ValueError as exc:
            margin = f"n/a ({exc})"
    base_arm = _base(arm, table)
    paired = [s for s in common if base_arm is not None and s in table[base_arm]]
    base = [table[base_arm][s] for s in paired] if base_arm is not None else []
    own = [table[arm][s] for s in paired]
    dc = _safe(paired_difference, [v[0] for v in own], [b[0] for b in base])
    dr = _safe(paired_difference, [v[1] for v in own], [b[1] for b in base])
    return (
        f"| {arm} | {len(common)} | {np.mean(c):.3f} | {np.mean(r):.3f} | {margin} | {verdict} | "
        f"{base_arm or 'n/a'} | {_fmt(dc)} | {_fmt(dr)} |"
    )


def _control_row(arm: str, name: str, control: str, table: dict[str, dict[int, tuple]], front: _Frontier | None) -> str:
    """arm minus control: the difference of their margins on ``front``, and the direct paired differences."""
    seeds = front.seeds if front is not None else sorted(table[arm])
    both = [s for s in seeds if s in table[arm] and s in table[control]]
    res: PairedResult | str = "n/a (no frontier traced)"
    if front is not None:
        res = _safe(
            compare_margins,
            ([table[arm][s][0] for s in both], [table[arm][s][1] for s in both]),
            ([table[control][s][0] for s in both], [table[control][s][1] for s in both]),
            [front.clean(table, s) for s in both],
            [front.robust(table, s) for s in both],
        )
    # the direct paired differences too: at equal coverage a control perturbs as much as the arm, so more clean
    # accuracy at no less robustness says "where" without the frontier (which may not reach)
    own, ctl = [table[arm][s] for s in both], [table[control][s] for s in both]
    dcl = _safe(paired_difference, [v[0] for v in own], [v[0] for v in ctl])
    drb = _safe(paired_difference, [v[1] for v in own], [v[1] for v in ctl])
    where = front.name if front is not None else "none"
    return f"| {arm} | {name}: {control} | {where} | {_fmt(res)} | {_fmt(dcl)} | {_fmt(drb)} |"


_MARGIN_HEAD = [
    "| arm | seeds | clean | robust | margin | verdict | base | clean vs base | robust vs base |",
    "|---|---|---|---|---|---|---|---|---|",
]


def decide(cfg: ExperimentConfig, payloads: Sequence[dict[str, Any]], out: str | Path) -> dict[str, Path]:
    """Write decision.md, decision_seeds.csv and frontier.png from finished runs; {} when no frontier has two
    points (PGD-AT radii, or TRADES betas, counting ``standard``)."""
    out = Path(out)
    eps = robust_eps(cfg)
    table = _per_seed(cfg, payloads, eps)
    traced = _traced(cfg, table)
    if not traced:
        return {}
    members = {label for front in traced.values() for label in front.labels}
    arms = [k for k in table if k not in members and k != "standard"]
    e = eps_label(eps, in_255ths([eps]))
    worst = "autoattack" in cfg.eval_attacks
    metric = "AutoAttack (worst case)" if worst else f"min over {', '.join(cfg.eval_attacks)}"
    fronts = " ".join(
        f"{front.name} frontier: {', '.join(front.labels)}; seeds with every {FRONTIERS[m][1]}: "
        f"{', '.join(map(str, front.seeds)) or 'none'}."
        for m, front in traced.items()
    )
    lines = [
        f"# Decision report of `{cfg.name}` on {cfg.dataset}",
        "",
        f"Robust accuracy: {metric}, unmasked, at eps {e}; clean accuracy on the same "
        f"{'all' if cfg.eval_limit is None else cfg.eval_limit} test images. {fronts} Cells: mean paired "
        "difference [95 % BCa bootstrap interval] (paired t-test p, Wilcoxon signed-rank p, seeds), in percentage "
        "points. An arm is `above` a frontier only if both tests reject 0; with few seeds they cannot. *base*: the "
        "unmasked method the arm changes (sip_trades: TRADES at the same beta and radius; else PGD-AT), paired."
        + (" `standard` is each frontier's zero end." if "standard" in members else ""),
    ]
    if "pgd_at" in traced:  # every other arm, TRADES at each beta too: how each compares with PGD-AT
        on_pgd = [k for k in table if k not in traced["pgd_at"].labels and k != "standard"]
        lines += ["", "## Frontier margins (arm clean minus PGD-AT frontier clean at the arm's robust accuracy)", ""]
        lines += _MARGIN_HEAD + [_margin_row(arm, table, traced["pgd_at"]) for arm in on_pgd]
    for method, front in traced.items():
        own = [arm for arm in arms if OWN_FRONTIER.get(_arm(arm).method) == method]
        if method != "pgd_at" and own:
            lines += [
                "",
                f"## {front.name} frontier margins (arm clean minus the {front.name} frontier's clean at the arm's "
                f"robust accuracy: does sparing the maps beat turning {front.name}'s own knob?)",
                "",
            ]
            lines += _MARGIN_HEAD + [_margin_row(arm, table, front) for arm in own]
    lines += [
        "",
        "## Against the controls (arm minus control: frontier margins on the arm's own frontier, clean and "
        "robust accuracy)",
        "",
        "| arm | control | frontier | difference of margins | clean | robust |",
        "|---|---|---|---|---|---|",
    ]
    rows = [
        _control_row(arm, name, control, table, _own_frontier(arm, traced))
        for arm in arms
        for name, control in _controls(arm, table)
    ]
    lines += rows or ["| – | – | – | no arm with controls in this experiment | | |"]
    files = {"decision": out / "decision.md", "decision_seeds": out / "decision_seeds.csv"}
    with files["decision_seeds"].open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["arm", "seed", "clean_acc", f"robust_acc_eps={e}"])
        for label, per in table.items():
            for s, (c, r) in sorted(per.items()):
                writer.writerow([label, s, c, r])
    lines += ["", f"Per-seed values: `{files['decision_seeds'].name}`; plot: `frontier.png`.", ""]
    atomic_write_text(files["decision"], "\n".join(lines))
    curves = {
        f"{front.name} frontier": {r: ([table[r][s][0] for s in front.seeds], [table[r][s][1] for s in front.seeds])
                                   for r in front.labels}
        for front in traced.values()
        if front.seeds
    }  # fmt: skip
    plotted = {a: ([v[0] for v in table[a].values()], [v[1] for v in table[a].values()]) for a in arms}
    if curves and all(not math.isnan(x) for pts in curves.values() for c, r in pts.values() for x in (*c, *r)):
        png = frontier_plot(out / "frontier.png", curves, plotted, title=f"{cfg.name}: clean vs robust (eps {e})")
        if png is not None:
            files["frontier"] = png
    return files


__all__ = ["decide", "robust_eps", "robust_value"]
