"""The cost of the `autoattack` evaluation as a ratio to APGD-CE alone, on the same model and images.

The model is `small_cnn` trained for a few seconds (seeded) on scikit-learn's 1,797 real 8x8 digits,
upsampled to --size px: accurate and not robust, like most baselines, so APGD-CE breaks most samples and
the ensemble's later stages (APGD-T: 9 targets x 100 steps; Square: 5,000 queries) see only the
survivors, as in AutoAttack. Both are timed interleaved (`_timing.interleaved`) at each eps, with the
robust accuracy of each and of every ensemble stage printed beside the ratio. Nothing is downloaded.

    .venv/bin/python -m benchmarks.autoattack [--n 200] [--eps 0.03 0.05] [--queries 5000] [--repeats 1]

The other goal of issue 16, masked PGD within 5% of the bare forward + backward loop, is measured by
benchmarks/attacks.py (unchanged).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from benchmarks._timing import add_machine_args, interleaved, machine, report
from sipat.attacks import AttackBudget, apgd, autoattack
from sipat.models import build_model


def _digits_model(size: int, device: torch.device) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """small_cnn trained 6 epochs on the digits (Adam 1e-2, batch 64), and the digits at `size` px."""
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True).clamp(0, 1) if size != 8 else x
    y = torch.tensor(d.target, dtype=torch.int64)
    torch.manual_seed(0)
    model = build_model("small_cnn", num_classes=10, in_channels=1, image_size=size).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    x, y = x.to(device), y.to(device)
    for _ in range(6):
        for idx in torch.randperm(len(x), generator=g).split(64):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval(), x, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="images (the last n digits: not the first ones)")
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--eps", type=float, nargs="+", default=[0.03, 0.05])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--queries", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=1)
    add_machine_args(ap)
    args = ap.parse_args()
    dev, _ = machine(args)
    model, x, y = _digits_model(args.size, dev)
    x, y = x[-args.n :], y[-args.n :]
    budget = AttackBudget(apgd_steps=args.steps, square_queries=args.queries)
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean().item()
    print(
        f"device {dev}, torch {torch.__version__}, {torch.get_num_threads()} threads, small_cnn on "
        f"{args.n}x1x{args.size}x{args.size} digits, clean accuracy {clean:.4f}; APGD {args.steps} steps, "
        f"Square {args.queries} queries"
    )
    for eps in args.eps:
        _compare(model, x, y, eps, budget, args.repeats, dev)


def _compare(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    budget: AttackBudget,
    repeats: int,
    dev: torch.device,
) -> None:
    """Time APGD-CE and the ensemble interleaved at one eps; print the ratio and the robust accuracies."""
    out: dict[str, torch.Tensor] = {}
    stages: dict[str, torch.Tensor] = {}
    skipped: list[str] = []

    def one() -> None:
        out["apgd"] = apgd(model, x, y, eps, budget.apgd_steps, generator=torch.Generator(device=dev).manual_seed(0))

    def ensemble() -> None:
        res = autoattack(model, x, y, eps, generator=torch.Generator(device=dev).manual_seed(0), budget=budget)
        stages.update(res.stages)
        skipped[:] = res.skipped

    medians = interleaved({"APGD-CE": one, "autoattack": ensemble}, repeats=repeats, device=dev, warmup=0)
    report(f"eps {eps:g}: wall time", medians, baseline="APGD-CE")
    with torch.no_grad():
        acc = (model(out["apgd"]).argmax(1) == y).float().mean().item()
    running = ", ".join(f"+{k} {v.float().mean().item():.4f}" for k, v in stages.items())
    print(f"robust accuracy: APGD-CE {acc:.4f}; autoattack {running} (skipped: {', '.join(skipped) or 'none'})")
    print(f"autoattack / APGD-CE cost ratio at eps {eps:g}: {medians['autoattack'] / medians['APGD-CE']:.1f}")


if __name__ == "__main__":
    main()
