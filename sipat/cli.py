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
import json
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, random_split

EPILOG = "eps values may be written as fractions, e.g. 8/255."


@dataclass(frozen=True)
class Defaults:
    eps: float
    steps: int
    alpha: float
    eval_grid: tuple[float, ...]


PAPER = Defaults(eps=8 / 255, steps=32, alpha=1 / 255, eval_grid=(0, 1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255))
MNIST = Defaults(eps=0.3, steps=20, alpha=0.0375, eval_grid=(0, 0.05, 0.1, 0.2, 0.3))
DATASET_DEFAULTS = {"mnist5k": MNIST, "shapes": PAPER}


def parse_eps(text: str) -> float:
    """'8/255' or '0.03' -> float; refuses negatives with a message argparse shows."""
    try:
        value = float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or a fraction like 8/255") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"eps must be >= 0, got {text}")
    return value


def _threshold(text: str) -> float | None:
    if text.lower() in ("none", "soft"):
        return None
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError("threshold must be in (0, 1], or 'soft' for the soft budget mask")
    return value


def load_dataset(spec: str, split: str, seed: int, salience_root: str | None = None) -> Dataset:
    """A built-in name, a CSV manifest or an ImageFolder; files are split 80/20 by seed for train/test."""
    from sipat.data import BUILTIN_DATASETS, ImageFolderDataset, ManifestDataset, load_builtin

    if spec in BUILTIN_DATASETS:
        return load_builtin(spec, split=split, seed=seed)
    path = Path(spec)
    if path.suffix.lower() == ".csv":
        full: Any = ManifestDataset(path)
    elif path.is_dir():
        full = ImageFolderDataset(path, salience_root=salience_root)
    else:
        raise SystemExit(
            f"--dataset {spec!r} is neither a built-in ({', '.join(BUILTIN_DATASETS)}), a .csv manifest nor a folder"
        )
    n_test = max(1, len(full) // 5)
    train_part, test_part = random_split(
        full, [len(full) - n_test, n_test], generator=torch.Generator().manual_seed(seed)
    )
    part = train_part if split == "train" else test_part
    for attr in ("classes", "num_classes", "in_channels", "image_size"):
        setattr(part, attr, getattr(full, attr))
    return part


def _defaults(spec: str) -> Defaults:
    return DATASET_DEFAULTS.get(spec, PAPER)


def _tqdm(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", dynamic_ncols=True, leave=False)


def _evaluate_with_bar(model: Any, data: Any, **kwargs: Any):
    """`sipat.evaluation.evaluate` with a tqdm bar in percent."""
    from sipat.evaluation import evaluate

    bar = _tqdm(100, "evaluating")
    try:
        return evaluate(model, data, progress=lambda f, _m: bar.update(round(f * 100) - bar.n), **kwargs)
    finally:
        bar.close()


def cmd_train(args: argparse.Namespace) -> int:
    from sipat.evaluation import format_table
    from sipat.models import build_model, default_arch_for
    from sipat.training import TrainConfig, model_meta, save_checkpoint, train

    d = _defaults(args.dataset)
    eps = d.eps if args.eps is None else args.eps
    steps = d.steps if args.steps is None else args.steps
    alpha = args.alpha if args.alpha is not None else (d.alpha if args.eps is None else 2.5 * eps / max(steps, 1))
    cfg = TrainConfig(
        method=args.method,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        eps=eps,
        alpha=alpha,
        steps=steps,
        threshold=args.threshold,
        seed=args.seed,
        amp=args.amp,
        channels_last=args.channels_last,
    )
    train_set = load_dataset(args.dataset, "train", args.seed, args.salience_root)
    test_set = load_dataset(args.test_dataset or args.dataset, "test", args.seed, args.salience_root)
    size = train_set.image_size if isinstance(train_set.image_size, int) else max(train_set.image_size)
    arch = args.arch or default_arch_for(size, train_set.in_channels)
    with torch.random.fork_rng():
        torch.manual_seed(args.seed)
        model = build_model(arch, num_classes=train_set.num_classes, in_channels=train_set.in_channels, image_size=size)
    meta = model_meta(
        model,
        num_classes=train_set.num_classes,
        in_channels=train_set.in_channels,
        image_size=size,
        classes=train_set.classes,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"training {arch} with {cfg.method} on {args.dataset} ({len(train_set)} images), eps {eps:g}, {steps} steps")
    bar = None

    def progress(p):
        nonlocal bar
        if bar is None or p.step == 1:
            if bar is not None:
                bar.close()
            bar = _tqdm(p.steps_per_epoch, f"epoch {p.epoch + 1}/{p.epochs}")
        bar.update(1)
        bar.set_postfix(loss=f"{p.loss:.3f}", acc=f"{p.accuracy:.3f}")

    result = train(
        model, train_set, cfg, device=args.device, progress=progress, checkpoint=out / "resume.pt", checkpoint_meta=meta
    )
    if bar is not None:
        bar.close()
    save_checkpoint(out / "model.pt", model, cfg, meta=meta)
    (out / "resume.pt").unlink(missing_ok=True)
    grid = args.eval_eps or list(d.eval_grid)
    metrics = _evaluate_with_bar(
        model,
        test_set,
        eps_grid=grid,
        attacks=args.eval_attacks,
        pgd_steps=args.eval_steps,
        apgd_steps=args.apgd_steps,
        seed=args.seed,
        device=args.device,
    )
    payload = {**metrics.to_dict(), "train_config": cfg.to_dict(), "history": result.history, **meta}
    (out / "metrics.json").write_text(json.dumps(payload, indent=2))
    print(format_table(metrics))
    print(f"wrote {out / 'model.pt'} and {out / 'metrics.json'}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from sipat.evaluation import format_table
    from sipat.training import load_model

    data = load_dataset(args.dataset, args.split, args.seed, args.salience_root)
    model, _ = load_model(args.checkpoint)
    grid = args.eps or list(_defaults(args.dataset).eval_grid)
    result = _evaluate_with_bar(
        model,
        data,
        eps_grid=grid,
        attacks=args.attacks,
        pgd_steps=args.steps,
        apgd_steps=args.apgd_steps,
        masked=args.masked,
        seed=args.seed,
        device=args.device,
    )
    print(format_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2))
        print(f"wrote {args.json}")
    return 0


def cmd_attack(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from sipat.attacks import apgd, fgsm, pgd
    from sipat.salience import has_salience, to_mask
    from sipat.training import load_model

    data = load_dataset(args.dataset, args.split, args.seed, args.salience_root)
    model, ckpt = load_model(args.checkpoint)
    n = min(args.n, len(data))
    xs, ys, ss = zip(*(data[i] for i in range(n)), strict=True)
    x, y, s = torch.stack(xs), torch.tensor(ys), torch.stack(ss)
    classes = ckpt["meta"].get("classes") or [str(i) for i in range(int(y.max()) + 1)]
    grid = args.eps or list(_defaults(args.dataset).eval_grid)
    steps = args.steps
    variants = [("", None)]
    if has_salience(s).any():
        variants.append(("_masked", to_mask(s, args.threshold)))
    out = Path(args.out)

    def save(t: torch.Tensor, path: Path) -> None:
        arr = t.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr).save(path)

    gen = torch.Generator().manual_seed(args.seed)
    rows = []
    for e in grid:
        for suffix, mask in variants:
            if e == 0:
                x_adv = x
            elif args.attack == "pgd":
                x_adv = pgd(model, x, y, e, 2.5 * e / steps, steps, mask=mask, generator=gen)
            elif args.attack == "apgd":
                x_adv = apgd(model, x, y, e, steps, mask=mask, generator=gen)
            else:
                x_adv = fgsm(model, x, y, e, mask=mask)
            with torch.no_grad():
                pred = model(x_adv).argmax(1)
            for i in range(n):
                folder = out / f"{i:04d}_{classes[int(y[i])]}"
                folder.mkdir(parents=True, exist_ok=True)
                save(x_adv[i], folder / f"eps_{e:.5f}{suffix}.png")
                rows.append(
                    {
                        "index": i,
                        "eps": e,
                        "masked": bool(suffix),
                        "label": classes[int(y[i])],
                        "prediction": classes[int(pred[i])],
                        "linf": float((x_adv[i] - x[i]).abs().max()),
                    }
                )
    (out / "attacks.json").write_text(json.dumps(rows, indent=2))
    fooled = {
        e: np.mean([r["label"] != r["prediction"] for r in rows if r["eps"] == e and not r["masked"]]) for e in grid
    }
    for e, f in fooled.items():
        print(f"eps {e:.4f}: {f:.2%} of {n} images misclassified")
    print(f"wrote {len(rows)} images under {out}")
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    from sipat.experiment import main_from_args

    return main_from_args(args)


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
    t.add_argument("--eval-attacks", nargs="+", choices=("pgd", "apgd", "fgsm"), default=["pgd", "apgd"])
    t.add_argument("--eval-steps", type=int, default=20, help="PGD steps in evaluation")
    t.add_argument("--apgd-steps", type=int, default=100)
    t.add_argument("--out", required=True, help="folder for model.pt and metrics.json")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="clean and robust accuracy of a checkpoint", epilog=EPILOG)
    common(e)
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--split", choices=("train", "test"), default="test")
    e.add_argument("--eps", type=parse_eps, nargs="+", default=None)
    e.add_argument("--attacks", nargs="+", choices=("pgd", "apgd", "fgsm"), default=["pgd", "apgd"])
    e.add_argument("--steps", type=int, default=20, help="PGD steps")
    e.add_argument("--apgd-steps", type=int, default=100)
    e.add_argument("--masked", action="store_true", help="attack only non-salient pixels")
    e.add_argument("--json", default=None, help="also write the numbers here")
    e.set_defaults(func=cmd_evaluate)

    a = sub.add_parser("attack", help="write perturbed PNGs at an eps grid (plain and masked)", epilog=EPILOG)
    common(a)
    a.add_argument("--checkpoint", required=True)
    a.add_argument("--split", choices=("train", "test"), default="test")
    a.add_argument("--attack", choices=("pgd", "apgd", "fgsm"), default="pgd")
    a.add_argument("--eps", type=parse_eps, nargs="+", default=None)
    a.add_argument("--steps", type=int, default=20)
    a.add_argument("--threshold", type=_threshold, default=0.5)
    a.add_argument("--n", type=int, default=16, help="how many images")
    a.add_argument("--out", required=True)
    a.set_defaults(func=cmd_attack)

    from sipat.experiment import add_arguments

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


if __name__ == "__main__":
    sys.exit(main())
