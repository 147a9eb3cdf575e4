"""`sipat experiment`: its flags (each given one overrides the config file's value) and the command."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from sipat.cli.options import parse_eps
from sipat.data import BUILTIN_DATASETS
from sipat.experiment import (
    EVAL_ATTACKS,
    EXPERIMENT_METHODS,
    ExperimentConfig,
    finished_runs,
    plan_runs,
    report_only,
    run_experiment,
)


def add_arguments(p: Any) -> None:
    """The `sipat experiment` flags; every given flag overrides the config file's value."""
    p.add_argument("--config", help="a JSON (or YAML) experiment config, e.g. configs/mnist5k.json")
    p.add_argument("--out", help="results folder (default runs/<config name>); re-running resumes it")
    names = ", ".join([*sorted(BUILTIN_DATASETS), "cifar10", "cifar100", "cub200"])
    p.add_argument("--dataset", help=f"{names} (the last three from --data-root)")
    p.add_argument("--data-root", help="folder with the cifar/cub files (see docs/experiments.md)")
    p.add_argument("--set", dest="params", action="append", default=[], metavar="KEY=VALUE",
                   help="a dataset parameter, value as JSON, e.g. --set texture_correlation=0.25")  # fmt: skip
    p.add_argument("--seeds", type=int, nargs="+")
    p.add_argument("--methods", nargs="+", help=f"of {', '.join(EXPERIMENT_METHODS)}; arms pgd_at@eps=0.5x, "
                   "trades@beta=1; sip_at@human for one variant")  # fmt: skip
    p.add_argument("--variants", nargs="+", help="e.g. human gradcam+top=0.25 human+displaced human+random "
                   "human+shuffled human+unannotated=0.5 predicted+unannotated=0.9 "
                   "human+unannotated=0.9+fill=gradcam")  # fmt: skip
    p.add_argument("--arch")
    p.add_argument("--weights-path", help="a local state-dict file every model starts from (never downloaded)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--eps", type=parse_eps, help="training radius")
    p.add_argument("--alpha", type=parse_eps, help="PGD step in training (default 2.5 * eps / steps)")
    p.add_argument("--steps", type=int, help="PGD steps in training")
    p.add_argument("--train-limit", type=int, help="train on a seeded random subset of this many images")
    p.add_argument("--reference-epochs", type=int, help="epochs of the Grad-CAM reference model")
    p.add_argument("--eval-eps", type=parse_eps, nargs="+")
    p.add_argument("--eval-attacks", nargs="+", choices=EVAL_ATTACKS)
    p.add_argument("--eval-steps", type=int, help="PGD steps in evaluation")
    p.add_argument("--apgd-steps", type=int, help="APGD steps in evaluation")
    p.add_argument("--eval-limit", type=int, help="evaluate on a seeded random subset of this many test images")
    p.add_argument("--masked-eval", dest="eval_masked", action="store_true", default=None)
    p.add_argument("--no-masked-eval", dest="eval_masked", action="store_false")
    p.add_argument("--no-save-models", dest="save_models", action="store_false", default=None)
    p.add_argument("--num-workers", type=int)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when present)")
    p.add_argument("--threads", type=int, help="torch CPU threads (1 is fastest for small CNNs on a busy machine)")
    p.add_argument("--plan", "--dry-run", dest="plan", action="store_true",
                   help="list the runs (and which are finished) and stop")  # fmt: skip
    p.add_argument("--report-only", action="store_true", help="rewrite the report from the finished runs")
    p.add_argument("--autoattack-check", type=int, metavar="N",
                   help="AutoAttack on N test images, saved models of --seeds (autoattack_check.md)")  # fmt: skip
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def config_from_args(args: Any) -> ExperimentConfig:
    cfg = ExperimentConfig.from_file(args.config) if args.config else ExperimentConfig()
    params = dict(cfg.dataset_params)
    for item in args.params:
        key, eq, raw = item.partition("=")
        if not eq or not key:
            raise ValueError(f"--set takes KEY=VALUE, got {item!r}")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return cfg.replace(
        dataset=args.dataset, data_root=args.data_root, dataset_params=params if args.params else None,
        seeds=args.seeds, methods=args.methods, variants=args.variants, arch=args.arch,
        weights_path=args.weights_path, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, eps=args.eps, alpha=args.alpha, steps=args.steps,
        train_limit=args.train_limit, reference_epochs=args.reference_epochs, eval_eps=args.eval_eps,
        eval_attacks=args.eval_attacks, eval_pgd_steps=args.eval_steps, eval_apgd_steps=args.apgd_steps,
        eval_limit=args.eval_limit, eval_masked=args.eval_masked, save_models=args.save_models,
        num_workers=args.num_workers,
    )  # fmt: skip


def main_from_args(args: Any) -> int:
    cfg = config_from_args(args)
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    out = Path(args.out or Path("runs") / cfg.name)
    if args.plan:
        runs = plan_runs(cfg)
        done = finished_runs(cfg, out, runs) if out.is_dir() else {}
        for r in runs:
            print(f"{'done' if r.run_id in done else 'todo'}  {r.run_id}")
        print(f"{len(runs)} runs ({len(done)} finished) -> {out}")
        return 0
    if args.autoattack_check is not None:
        from sipat.experiment.aacheck import autoattack_check

        files = autoattack_check(cfg, out, limit=args.autoattack_check, device=args.device)
        for f in files.values():
            print(f"wrote {f}")
        return 0
    files = report_only(cfg, out) if args.report_only else run_experiment(cfg, out, device=args.device,
                                                                          progress=args.progress)  # fmt: skip
    for f in files.values():
        print(f"wrote {f}")
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    return main_from_args(args)
