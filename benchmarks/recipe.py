"""PGD-AT on the built-in `shapes` set, 3 seeds, without and with the training recipe (eps ramp + lr warm-up).

Issue 16: with the shipped `configs/shapes.json` PGD-AT collapsed to chance in 2 of 3 seeds; an eps ramp plus a
learning-rate warm-up, the config otherwise unchanged, should train it in every seed. This script trains both
arms from the same seeded initialisation and data (the config's dataset parameters, lr, batch, eps, steps) and
reports clean and PGD accuracy on the test split per seed, and how many seeds ended at chance.

CPU-sized by default (fewer images and epochs than the config; the ramp and warm-up scaled with the epochs);
pass --epochs 30 --ramp 10 --warmup 5 --n-train 1000 for the issue's full setting.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.recipe [--epochs 10] [--ramp 4] [--warmup 2] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from sipat.attacks import pgd
from sipat.data import load_builtin
from sipat.models import new_model
from sipat.training import TrainConfig, train
from sipat.vocabulary import parse_eps

REPO = Path(__file__).resolve().parents[1]


def accuracy(model: torch.nn.Module, data, eps: float, steps: int, seed: int, device: str) -> tuple[float, float]:
    """(clean, robust) accuracy; robust = L-inf PGD, ``steps`` steps of 2.5 eps / steps, one random start."""
    gen = torch.Generator(device=device).manual_seed(seed)
    clean = robust = n = 0
    for x, y, _s in DataLoader(data, batch_size=250):
        x, y = x.to(device), y.to(device)
        with torch.no_grad():
            clean += int((model(x).argmax(1) == y).sum())
        x_adv = pgd(model, x, y, eps, 2.5 * eps / steps, steps, generator=gen)
        with torch.no_grad():
            robust += int((model(x_adv).argmax(1) == y).sum())
        n += y.shape[0]
    return clean / n, robust / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "configs" / "shapes.json"))
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--ramp", type=int, default=4, help="eps ramp epochs of the recipe arm")
    ap.add_argument("--warmup", type=int, default=2, help="lr warm-up epochs of the recipe arm")
    ap.add_argument("--n-train", type=int, default=400)
    ap.add_argument("--n-test", type=int, default=300)
    ap.add_argument("--eval-steps", type=int, default=10)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()

    conf = json.loads(Path(args.config).read_text())
    params = {**conf.get("dataset_params", {}), "n_train": args.n_train, "n_test": args.n_test}
    eps = parse_eps(conf["eps"]) if isinstance(conf["eps"], str) else float(conf["eps"])
    steps = int(conf["steps"])
    alpha = conf.get("alpha") or 2.5 * eps / steps
    base = TrainConfig(
        method="pgd_at",
        epochs=args.epochs,
        batch_size=conf["batch_size"],
        lr=conf["lr"],
        lr_step=conf["lr_step"],
        lr_gamma=conf["lr_gamma"],
        eps=eps,
        alpha=alpha,
        steps=steps,
    )
    arms = {"plain": {}, "recipe": {"eps_ramp_epochs": args.ramp, "warmup_epochs": args.warmup}}
    print(
        f"PGD-AT on shapes ({args.n_train} train / {args.n_test} test), {conf['arch']}, {args.epochs} epochs, "
        f"lr {base.lr}, eps {eps * 255:.0f}/255, {steps} steps; recipe = eps ramp {args.ramp} + warm-up "
        f"{args.warmup} epochs; eval PGD-{args.eval_steps} at the training eps"
    )
    rows = []
    for seed in args.seeds:
        train_set = load_builtin("shapes", split="train", seed=seed, **params)
        test_set = load_builtin("shapes", split="test", seed=seed, **params)
        size = train_set.image_size if isinstance(train_set.image_size, int) else max(train_set.image_size)
        for arm, knobs in arms.items():
            model = new_model(conf["arch"], train_set.num_classes, train_set.in_channels, size, seed)
            cfg = TrainConfig.from_dict({**base.to_dict(), "seed": seed, **knobs})
            t0 = time.perf_counter()
            train(model, train_set, cfg, device=args.device)
            clean, robust = accuracy(model, test_set, eps, args.eval_steps, seed, args.device)
            row = {"seed": seed, "arm": arm, "clean": clean, "pgd": robust, "seconds": time.perf_counter() - t0}
            rows.append(row)
            print(f"seed {seed}  {arm:7s} clean {clean:.3f}  pgd {robust:.3f}  ({row['seconds']:.0f} s)", flush=True)
    chance = 1 / train_set.num_classes
    for arm in arms:
        mine = [r for r in rows if r["arm"] == arm]
        collapsed = sum(r["clean"] < chance + 0.1 for r in mine)
        mean_clean = sum(r["clean"] for r in mine) / len(mine)
        mean_pgd = sum(r["pgd"] for r in mine) / len(mine)
        print(
            f"{arm:7s} mean clean {mean_clean:.3f}  mean pgd {mean_pgd:.3f}  "
            f"at chance (clean < {chance + 0.1:.2f}): {collapsed} of {len(mine)} seeds"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
