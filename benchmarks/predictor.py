"""How fast is the salience predictor, next to the classifier it serves? (issue 20)

On the same images (shapes, 3x32x32, batch 32): one training pass of the predictor (forward + backward + step)
and its inference (dropout off; and MC-dropout with --samples passes), each as a ratio to one training pass
of the default classifier for the set (forward + backward + step, standard cross-entropy). Candidates run in
turns and are compared by their medians (see _timing.py).

    .venv/bin/python -m benchmarks.predictor [--n 512] [--repeats 3] [--width 16] [--samples 16] [--threads 1]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from benchmarks._timing import add_machine_args, interleaved, machine, report
from sipat.data import load_builtin
from sipat.models import build_model, default_arch_for
from sipat.predictor import SaliencyNet, mc_dropout, predict_maps
from sipat.predictor.train import masked_loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=512, help="images per timed pass")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--width", type=int, default=16, help="predictor width (SaliencyNet)")
    ap.add_argument("--samples", type=int, default=16, help="MC-dropout passes")
    add_machine_args(ap)
    args = ap.parse_args()

    dev, _ = machine(args)
    data = load_builtin("shapes", split="train", n_train=args.n)
    x, y, s = data.images.to(dev), data.labels.to(dev), data.salience.to(dev)
    size = data.image_size if isinstance(data.image_size, int) else max(data.image_size)
    arch = default_arch_for(size, data.in_channels)
    torch.manual_seed(0)
    clf = build_model(arch, num_classes=data.num_classes, in_channels=data.in_channels, image_size=size).to(dev)
    pred = SaliencyNet(data.in_channels, width=args.width).to(dev)
    clf_opt = torch.optim.SGD(clf.parameters(), lr=0.01, momentum=0.9)
    pred_opt = torch.optim.AdamW(pred.parameters(), lr=1e-3)
    batches = list(range(0, args.n, args.batch))

    def classifier_pass() -> None:
        clf.train()
        for i in batches:
            clf_opt.zero_grad(set_to_none=True)
            F.cross_entropy(clf(x[i : i + args.batch]), y[i : i + args.batch]).backward()
            clf_opt.step()

    def predictor_train_pass() -> None:
        pred.train()
        for i in batches:
            pred_opt.zero_grad(set_to_none=True)
            masked_loss(pred(x[i : i + args.batch]), s[i : i + args.batch]).backward()
            pred_opt.step()

    candidates = {
        "classifier fwd+bwd (train pass)": classifier_pass,
        "predictor train pass": predictor_train_pass,
        "predictor inference": lambda: predict_maps(pred, x, batch_size=args.batch),
        f"predictor MC-dropout x{args.samples}": lambda: mc_dropout(
            pred, x, samples=args.samples, batch_size=args.batch
        ),
    }
    medians = interleaved(candidates, repeats=args.repeats, device=dev)
    n_par = sum(p.numel() for p in pred.parameters())
    n_clf = sum(p.numel() for p in clf.parameters())
    print(
        f"device {dev}, torch {torch.__version__}, {torch.get_num_threads()} threads, shapes {args.n} images, "
        f"batch {args.batch}; classifier {arch} ({n_clf / 1e6:.2f} M params), SaliencyNet width {args.width} "
        f"({n_par / 1e6:.2f} M params)"
    )
    report("one pass over the images", medians, baseline="classifier fwd+bwd (train pass)", per_call=(args.n, "images"))


if __name__ == "__main__":
    main()
