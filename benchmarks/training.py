"""One epoch of SIP-AT against one epoch of PGD-AT: what does sparing the salient pixels cost?

Same model initialisation, data, attack budget and seed; the epochs are run in turns (interleaved) and
compared by their medians. Goal (issue 3): sip_at / pgd_at <= 1.05.
On a GPU (or with --variants) sip_at is also timed with TrainConfig(amp="bf16"), with channels_last=True, and
with both, as ratios to the same fp32 pgd_at epoch (issue 9).

    .venv/bin/python -m benchmarks.training [--dataset shapes] [--n 1000] [--steps 10] [--repeats 3] [--variants]
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.data import Subset

from benchmarks._timing import add_machine_args, interleaved, machine, report
from sipat.data import load_builtin
from sipat.models import build_model, default_arch_for
from sipat.training import TrainConfig, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="shapes")
    ap.add_argument("--n", type=int, default=1000, help="training images per epoch")
    ap.add_argument("--steps", type=int, default=10, help="PGD steps per batch")
    ap.add_argument("--repeats", type=int, default=3)
    add_machine_args(ap)
    args = ap.parse_args()

    dev, variants = machine(args)
    data = load_builtin(args.dataset, split="train")
    subset = Subset(data, range(min(args.n, len(data))))
    size = data.image_size if isinstance(data.image_size, int) else max(data.image_size)
    arch = default_arch_for(size, data.in_channels)

    def epoch(method: str, **speed):
        def run() -> None:
            torch.manual_seed(0)
            model = build_model(arch, num_classes=data.num_classes, in_channels=data.in_channels, image_size=size)
            cfg = TrainConfig(method=method, epochs=1, steps=args.steps, alpha=2.5 * (8 / 255) / args.steps, **speed)
            train(model, subset, cfg, device=dev)

        return run

    candidates = {"pgd_at epoch": epoch("pgd_at"), "sip_at epoch": epoch("sip_at"), "standard epoch": epoch("standard")}
    if variants:
        candidates |= {
            "sip_at epoch, bf16": epoch("sip_at", amp="bf16"),
            "sip_at epoch, channels_last": epoch("sip_at", channels_last=True),
            "sip_at epoch, bf16 + channels_last": epoch("sip_at", amp="bf16", channels_last=True),
        }
    medians = interleaved(candidates, repeats=args.repeats, device=dev, warmup=0)
    print(
        f"device {dev}, torch {torch.__version__}, {torch.get_num_threads()} threads, {arch} on {args.dataset}, "
        f"{len(subset)} images, batch 32, PGD-{args.steps}"
    )
    report("one training epoch", medians, baseline="pgd_at epoch")
    print(f"\nsip_at / pgd_at: {medians['sip_at epoch'] / medians['pgd_at epoch']:.3f}  (goal <= 1.05)")


if __name__ == "__main__":
    main()
