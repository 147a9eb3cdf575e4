"""Stimulus generation throughput: images/s per eps level, along the worker's path (worker/jobs/stimuli.py).

Per batch and level, as `generate_stimuli` does it: eps 0 copies the 8-bit clean images; every other level runs
a stimulus set's default attack, masked L-inf PGD-10 (alpha 2.5 eps / steps, mask = to_mask(salience, 0.5)),
brings the result to the CPU and quantises it to 8 bits inside the eps-ball. Then, at every level, what
`_store` does before its blob write and database rows (both left out): the model's predictions on the clean and
the stored images, the norms, one PNG per image and its sha256. The levels are timed interleaved in one run and
printed as ratios to eps 0 (clean copy + encode). On a GPU (or with --variants) the largest level is also timed
under bf16 autocast, with model and input in channels_last, and with both (issue 9; the worker uses neither).
A random-weight model of the dataset's default architecture; images and salience maps of the offline
`shapes` test split.

    .venv/bin/python -m benchmarks.stimuli [--batch 64] [--eps 0,2,4,8,16] [--steps 10] [--repeats 5] [--variants]
"""

from __future__ import annotations

import argparse
import copy
import hashlib

import numpy as np
import torch
from torch import Tensor

from benchmarks._timing import add_machine_args, interleaved, machine, report
from sipat.attacks import pgd
from sipat.data import load_builtin
from sipat.models import build_model, default_arch_for
from sipat.salience import to_mask
from sipat.stimuli import norms, quantise, stimulus_png


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="shapes")
    ap.add_argument("--batch", type=int, default=64, help="images per batch (the worker's default batch_size)")
    ap.add_argument("--eps", default="0,2,4,8,16", help="eps levels in 1/255 units, comma-separated")
    ap.add_argument("--steps", type=int, default=10, help="PGD steps (a stimulus set's default)")
    ap.add_argument("--repeats", type=int, default=5)
    add_machine_args(ap)
    args = ap.parse_args()

    dev, variants = machine(args)
    data = load_builtin(args.dataset, split="test")
    items = [data[i] for i in range(min(args.batch, len(data)))]
    xu = torch.stack([(x * 255).round() for x, _, _ in items]).to(torch.int16)  # 8-bit images, as the worker reads
    x_cpu = xu.float() / 255.0
    y_cpu = torch.tensor([int(y) for _, y, _ in items])
    s_cpu = torch.stack([s for _, _, s in items])
    size = data.image_size if isinstance(data.image_size, int) else max(data.image_size)
    arch = default_arch_for(size, data.in_channels)
    torch.manual_seed(0)
    model = build_model(arch, num_classes=data.num_classes, in_channels=data.in_channels, image_size=size)
    model = model.to(dev).eval()
    model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)

    @torch.no_grad()
    def predict(m: torch.nn.Module, q: Tensor) -> Tensor:
        return m(q.float().div(255.0).to(dev)).argmax(1).cpu()

    def level(eps: float, *, bf16: bool = False, channels_last: bool = False):
        m = model_cl if channels_last else model
        fmt = torch.channels_last if channels_last else torch.contiguous_format

        def run() -> None:
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                if eps == 0:
                    q = xu.clone()
                else:
                    x, y = x_cpu.to(dev).contiguous(memory_format=fmt), y_cpu.to(dev)
                    mask = to_mask(s_cpu, 0.5).to(dev)
                    gen = torch.Generator(device=dev).manual_seed(0)
                    x_adv = pgd(m, x, y, eps, 2.5 * eps / max(1, args.steps), args.steps, mask=mask, generator=gen)
                    q = quantise(xu, x_adv.cpu(), eps, "linf")
                predict(m, xu), predict(m, q), norms(xu, q)
                for qi in q:
                    hashlib.sha256(stimulus_png(qi.numpy().astype(np.uint8).transpose(1, 2, 0))).hexdigest()

        return run

    levels = sorted({0, *(int(e) for e in args.eps.split(","))})
    candidates = {f"eps {k}/255": level(k / 255) for k in levels}
    if variants:
        top = levels[-1]
        candidates |= {
            f"eps {top}/255, bf16": level(top / 255, bf16=True),
            f"eps {top}/255, channels_last": level(top / 255, channels_last=True),
            f"eps {top}/255, bf16 + channels_last": level(top / 255, bf16=True, channels_last=True),
        }
    medians = interleaved(candidates, repeats=args.repeats, device=dev)
    print(
        f"device {dev}, torch {torch.__version__}, {torch.get_num_threads()} threads, {arch} on {args.dataset}, "
        f"batch {len(items)}, masked PGD-{args.steps} (L-inf)"
    )
    title = "stimulus generation, one batch (attack + quantise + predictions + PNG)"
    report(title, medians, baseline="eps 0/255", per_call=(len(items), "images"))


if __name__ == "__main__":
    main()
