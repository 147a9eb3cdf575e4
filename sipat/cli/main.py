"""`sipat train | evaluate | attack | experiment`: the method for researchers without the web service.

    sipat train --dataset mnist5k --method sip_at --epochs 1 --out runs/x
    sipat evaluate --checkpoint runs/x/model.pt --dataset mnist5k --attacks pgd apgd
    sipat attack --checkpoint runs/x/model.pt --dataset mnist5k --eps 0 0.1 0.3 --n 8 --out runs/x/attacks
    sipat experiment --config configs/mnist5k.json --out runs/mnist5k   (see docs/experiments.md)

`--dataset` is a built-in name (mnist5k, shapes), a CSV manifest (image_path,image_class[,salience_map_path |
bounding_boxes]) or an ImageFolder directory. Defaults follow the dataset: MNIST's customary eps is 0.3,
not the paper's 8/255.
"""

from __future__ import annotations

import argparse
import sys

from sipat.cli.commands import cmd_attack, cmd_evaluate, cmd_train
from sipat.cli.experiment import add_arguments, cmd_experiment
from sipat.cli.options import EPILOG, _threshold, parse_eps
from sipat.vocabulary import EVAL_ATTACKS


def build_parser() -> argparse.ArgumentParser:
    from sipat.training import METHODS

    parser = argparse.ArgumentParser(
        prog="sipat", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dataset", required=True, help="mnist5k, shapes, a manifest .csv or an ImageFolder dir")
        p.add_argument("--salience-root", help="ImageFolder only: a parallel folder of salience PNGs")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when present)")

    t = sub.add_parser("train", help="train a model and evaluate it", epilog=EPILOG)
    common(t)
    t.add_argument("--method", choices=METHODS, default="sip_at")
    t.add_argument("--arch", default=None, help="small_cnn, cnn32, resnet18, resnet50, densenet121")
    t.add_argument("--epochs", type=int, default=1)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=0.1)
    t.add_argument("--eps", type=parse_eps, default=None, help="training radius (default: the dataset's)")
    t.add_argument("--alpha", type=parse_eps, default=None, help="PGD step (default 2.5 * eps / steps)")
    t.add_argument("--steps", type=int, default=None, help="PGD steps in training")
    t.add_argument("--threshold", type=_threshold, default=0.5, help="salience threshold, or 'soft'")
    t.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none")
    t.add_argument("--channels-last", action="store_true")
    t.add_argument("--test-dataset", default=None, help="evaluate on this instead of the held-out split")
    t.add_argument("--eval-eps", type=parse_eps, nargs="+", default=None)
    t.add_argument("--eval-attacks", nargs="+", choices=EVAL_ATTACKS, default=["pgd", "apgd"])
    t.add_argument("--eval-steps", type=int, default=20, help="PGD steps in evaluation")
    t.add_argument("--apgd-steps", type=int, default=100)
    r = t.add_argument_group("recipe", "the training recipe (sipat.train_config); each flag overrides --recipe")
    r.add_argument("--recipe", action="store_true", help="eps ramp 10, warm-up 5, clip 10, wd 5e-4, crop+flip")
    r.add_argument("--eps-ramp-epochs", type=int, default=None, help="eps rises linearly over these epochs")
    r.add_argument("--warmup-epochs", type=int, default=None, help="learning rate rises over these epochs")
    r.add_argument("--grad-clip", type=float, default=None, help="largest global gradient norm")
    r.add_argument("--weight-decay", type=float, default=None)
    r.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None, help="crop + flip, with maps")
    r.add_argument("--crop-padding", type=int, default=None, help="pixels of zero padding of --augment's crop")
    r.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None, help="--no-flip: crop only")
    r.add_argument("--val-share", type=float, default=None, help="held out to keep the best robust epoch")
    r.add_argument("--patience", type=int, default=None, help="early stop after epochs without a better one")
    r.add_argument("--tensorboard", action="store_true", help="also write TensorBoard scalars to --out")
    t.add_argument("--out", required=True, help="folder for model.pt, metrics.json and train_log.csv")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="clean and robust accuracy of a checkpoint", epilog=EPILOG)
    common(e)
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--split", choices=("train", "test"), default="test")
    e.add_argument("--eps", type=parse_eps, nargs="+", default=None)
    e.add_argument("--attacks", nargs="+", choices=EVAL_ATTACKS, default=["pgd", "apgd"])
    e.add_argument("--steps", type=int, default=20, help="PGD steps")
    e.add_argument("--apgd-steps", type=int, default=100)
    e.add_argument("--masked", action="store_true", help="attack only non-salient pixels")
    e.add_argument("--json", default=None, help="also write the numbers here")
    e.set_defaults(func=cmd_evaluate)

    a = sub.add_parser("attack", help="write perturbed PNGs at an eps grid (plain and masked)", epilog=EPILOG)
    common(a)
    a.add_argument("--checkpoint", required=True)
    a.add_argument("--split", choices=("train", "test"), default="test")
    a.add_argument("--attack", choices=EVAL_ATTACKS, default="pgd")
    a.add_argument("--eps", type=parse_eps, nargs="+", default=None)
    a.add_argument("--steps", type=int, default=20)
    a.add_argument("--threshold", type=_threshold, default=0.5)
    a.add_argument("--n", type=int, default=16, help="how many images")
    a.add_argument("--out", required=True)
    a.set_defaults(func=cmd_attack)

    x = sub.add_parser("experiment", help="all methods x salience variants x seeds -> tables + plot", epilog=EPILOG)
    add_arguments(x)
    x.set_defaults(func=cmd_experiment)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:  # bad input: say what, not a traceback
        print(f"sipat {args.command}: error: {exc}", file=sys.stderr)
        return 2
