"""`sipat train | evaluate | attack`: each command reads its parsed flags, runs the method, prints a table and
writes its files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, random_split

from sipat.cli.options import _defaults
from sipat.data import SubsetOf, contract, side
from sipat.vocabulary import RECIPE, grid_labels


def load_dataset(spec: str, split: str, seed: int, salience_root: str | None = None) -> Dataset:
    """A built-in name, a CSV manifest or an ImageFolder; files are split 80/20 by seed for train/test."""
    from sipat.data import BUILTIN_DATASETS, ImageFolderDataset, ManifestDataset, load_builtin

    if spec in BUILTIN_DATASETS:
        return load_builtin(spec, split=split, seed=seed)
    path = Path(spec)
    if path.suffix.lower() == ".csv":
        full: ManifestDataset | ImageFolderDataset = ManifestDataset(path)
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
    return SubsetOf(full, (train_part if split == "train" else test_part).indices)


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


#: the recipe's keys (the vocabulary's RECIPE) and the validation-split flags
RECIPE_FLAGS = (*RECIPE, "val_share", "patience")


def recipe_knobs(args: argparse.Namespace) -> dict[str, Any]:
    """TrainConfig fields from `sipat train`'s recipe flags: `--recipe`'s values, then each flag given."""

    given = {name: getattr(args, name) for name in RECIPE_FLAGS if getattr(args, name) is not None}
    return {**(RECIPE if args.recipe else {}), **given}


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
        **recipe_knobs(args),
    )
    train_set = load_dataset(args.dataset, "train", args.seed, args.salience_root)
    test_set = load_dataset(args.test_dataset or args.dataset, "test", args.seed, args.salience_root)
    size, info = side(train_set), contract(train_set)
    arch = args.arch or default_arch_for(size, info.in_channels)
    with torch.random.fork_rng():
        torch.manual_seed(args.seed)
        model = build_model(arch, num_classes=info.num_classes, in_channels=info.in_channels, image_size=size)
    meta = model_meta(
        model,
        num_classes=info.num_classes,
        in_channels=info.in_channels,
        image_size=size,
        classes=info.classes,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (eps_text,) = grid_labels([eps])
    print(f"training {arch} with {cfg.method} on {args.dataset} ({len(info)} images), eps {eps_text}, {steps} steps")
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
        model,
        train_set,
        cfg,
        device=args.device,
        progress=progress,
        checkpoint=out / "resume.pt",
        checkpoint_meta=meta,
        log_csv=out / "train_log.csv",
        tensorboard=out / "tensorboard" if args.tensorboard else None,
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
    n = min(args.n, len(contract(data)))
    xs, ys, ss = zip(*(data[i] for i in range(n)), strict=True)
    x, y, s = torch.stack(xs), torch.tensor(ys), torch.stack(ss)
    classes = ckpt["meta"].get("classes") or [str(i) for i in range(int(y.max()) + 1)]
    grid = args.eps or list(_defaults(args.dataset).eval_grid)
    steps = args.steps
    variants: list[tuple[str, torch.Tensor | None]] = [("", None)]
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
    for label, f in zip(grid_labels(fooled), fooled.values(), strict=True):
        print(f"eps {label}: {f:.2%} of {n} images misclassified")
    print(f"wrote {len(rows)} images under {out}")
    return 0
