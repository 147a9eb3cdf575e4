"""sipat's masked PGD-10 against torchattacks' PGD-10 and against a bare loop of 10 input-gradient passes.

Same model, batch and device for all three, measured interleaved in one run and printed as ratios.
Goal (issue 3): within 5% of the bare loop, and not slower than torchattacks.
The bare loop is the least work any 10-step PGD must do: 10 forward passes and 10 backward passes to the
input (torch.autograd.grad w.r.t. x, as both libraries do), plus the sign step.

    .venv/bin/pip install --no-deps torchattacks==3.5.1     # benchmark only: it pins an old requests
    .venv/bin/python benchmarks/attacks.py [--arch resnet18] [--batch 64] [--repeats 7]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import interleaved, report

from sipat.attacks import pgd
from sipat.models import build_model
from sipat.training import pick_device


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="cnn32")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--device", default=None)
    args = ap.parse_args()
    try:
        import torchattacks
    except ImportError:
        sys.exit("torchattacks is needed for this benchmark: .venv/bin/pip install --no-deps torchattacks==3.5.1")

    dev = pick_device(args.device)
    torch.manual_seed(0)
    model = build_model(args.arch, num_classes=10, in_channels=3, image_size=args.size).to(dev).eval()
    x = torch.rand(args.batch, 3, args.size, args.size, device=dev)
    y = torch.randint(0, 10, (args.batch,), device=dev)
    mask = (torch.rand(args.batch, 1, args.size, args.size, device=dev) > 0.3).float()
    eps, alpha, steps = 8 / 255, 2 / 255, 10

    def bare() -> torch.Tensor:
        x_adv = x.clone()
        for _ in range(steps):
            x_adv.requires_grad_(True)
            loss = F.cross_entropy(model(x_adv), y)
            (g,) = torch.autograd.grad(loss, x_adv)
            x_adv = (x_adv.detach() + alpha * g.sign()).clamp(0, 1)
        return x_adv

    ta = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)
    gen = torch.Generator(device=dev).manual_seed(0)
    medians = interleaved(
        {
            "bare loop (10 fwd + input-bwd)": bare,
            "sipat pgd, masked": lambda: pgd(model, x, y, eps, alpha, steps, mask=mask, generator=gen),
            "sipat pgd, unmasked": lambda: pgd(model, x, y, eps, alpha, steps, generator=gen),
            "torchattacks PGD": lambda: ta(x, y),
        },
        repeats=args.repeats,
        device=dev,
    )
    print(
        f"device {dev}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{args.arch} on {args.batch}x3x{args.size}x{args.size}, PGD-{steps}"
    )
    report("PGD-10 wall time", medians, baseline="bare loop (10 fwd + input-bwd)")
    ratio_ta = medians["sipat pgd, masked"] / medians["torchattacks PGD"]
    print(f"\nsipat masked / torchattacks: {ratio_ta:.3f}")


if __name__ == "__main__":
    main()
