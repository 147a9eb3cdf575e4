"""sipat's masked PGD-10 against torchattacks' PGD-10 and against a bare loop of 10 input-gradient passes.

Same model, batch and device for all three, measured interleaved in one run and printed as ratios.
Goal (issue 3): within 5% of the bare loop, and not slower than torchattacks.
The bare loop is the least work any 10-step PGD must do: 10 forward passes and 10 backward passes to the
input (torch.autograd.grad w.r.t. x, as both libraries do), plus the sign step.
On a GPU (or with --variants) sipat's masked PGD is also timed under bf16 autocast, with model and input in
channels_last, and with both, as ratios to the same fp32 bare loop (issue 9). Without torchattacks its
candidate is skipped.

    .venv/bin/pip install --no-deps torchattacks==3.5.1     # benchmark only: it pins an old requests
    .venv/bin/python -m benchmarks.attacks [--arch resnet18] [--batch 64] [--repeats 7] [--variants] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy

import torch
import torch.nn.functional as F

from benchmarks._timing import add_machine_args, interleaved, machine, report
from sipat.attacks import pgd
from sipat.models import build_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="cnn32")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=7)
    add_machine_args(ap)
    args = ap.parse_args()
    try:
        import torchattacks
    except ImportError:
        torchattacks = None

    dev, variants = machine(args)
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

    gen = torch.Generator(device=dev).manual_seed(0)

    def masked(m: torch.nn.Module, xs: torch.Tensor):
        return lambda: pgd(m, xs, y, eps, alpha, steps, mask=mask, generator=gen)

    def bf16(fn):
        def run() -> torch.Tensor:
            with torch.autocast(dev.type, dtype=torch.bfloat16):
                return fn()

        return run

    candidates = {
        "bare loop (10 fwd + input-bwd)": bare,
        "sipat pgd, masked": masked(model, x),
        "sipat pgd, unmasked": lambda: pgd(model, x, y, eps, alpha, steps, generator=gen),
    }
    if torchattacks is not None:
        ta = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)
        candidates["torchattacks PGD"] = lambda: ta(x, y)
    if variants:
        model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
        masked_cl = masked(model_cl, x.contiguous(memory_format=torch.channels_last))
        candidates |= {
            "sipat pgd, masked, bf16": bf16(masked(model, x)),
            "sipat pgd, masked, channels_last": masked_cl,
            "sipat pgd, masked, bf16 + channels_last": bf16(masked_cl),
        }
    medians = interleaved(candidates, repeats=args.repeats, device=dev)
    print(
        f"device {dev}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{args.arch} on {args.batch}x3x{args.size}x{args.size}, PGD-{steps}"
    )
    report("PGD-10 wall time", medians, baseline="bare loop (10 fwd + input-bwd)")
    if torchattacks is None:
        print("\ntorchattacks not installed: its candidate was skipped (pip install --no-deps torchattacks==3.5.1)")
    else:
        ratio_ta = medians["sipat pgd, masked"] / medians["torchattacks PGD"]
        print(f"\nsipat masked / torchattacks: {ratio_ta:.3f}")


if __name__ == "__main__":
    main()
