"""Map quality over the share of painted images, random vs active choice of which to paint (issue 20).

On `shapes` with simulated annotators (sipat.predictor.annotators: 3 people per image, the exact mask
dilated/eroded, parts missed, stray strokes, edge noise), the k % painted training images train the salience
predictor, for k = 5, 10, 25, 50, 100. Two ways to choose the painted images, from the same random 5 % start:

- random: each increment drawn uniformly from the unpainted images (the default of the platform);
- active: each increment picked by `select_active` with the predictor trained on the pool so far
  (MC-dropout spread + disagreement with Grad-CAM of a standard classifier, class-balanced).

Reported per k and choice: held-out CC, SIM, KL, NSS, AUC (Judd, exact), IoU at 0.5 of the predictor on the
test images' human maps (other simulated annotators), and "fill CC": CC of the training maps SIP-AT would get
(human where painted, predicted elsewhere) with every training image's human map. The baselines Grad-CAM,
centre prior and uniform (and, as a reference no study has, the exact object mask) are scored on the same
test images (Grad-CAM of a cnn32 trained --clf-epochs epochs with standard cross-entropy, explaining the true
class). The predictor trains for a fixed number of optimiser steps (--steps), so small pools are not starved.
The SIP-AT accuracy half of the issue's curve is not here (it needs the `predicted` source in the experiment
runner).

    .venv/bin/python -m benchmarks.predictor_curve [--n-train 400] [--n-test 200] [--steps 60] [--seed 0] [--json F]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from sipat.data import load_builtin
from sipat.models import build_model, default_arch_for, gradcam_layer
from sipat.predictor import (
    PredictorConfig,
    centre_prior,
    compare,
    fill_maps,
    human_mean,
    predict_maps,
    select_active,
    select_random,
    train_predictor,
    uniform_map,
)
from sipat.predictor.metrics import MEASURES, cc
from sipat.salience import gradcam
from sipat.training import TrainConfig, train

KS = (5, 10, 25, 50, 100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-train", type=int, default=400)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--steps", type=int, default=60, help="predictor optimiser steps per training")
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--clf-epochs", type=int, default=10, help="epochs of the Grad-CAM reference classifier")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None, help="also write the numbers here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()

    tr = load_builtin("shapes", split="train", seed=args.seed, n_train=args.n_train)
    te = load_builtin("shapes", split="test", seed=args.seed, n_test=args.n_test)
    h_train = human_mean(tr.salience, seed=args.seed)  # what every training image's painters would give
    h_test = human_mean(te.salience, seed=args.seed + 1000)
    n, size = len(tr), int(tr.image_size) if isinstance(tr.image_size, int) else max(tr.image_size)

    torch.manual_seed(args.seed)  # the reference classifier for Grad-CAM: standard training
    clf = build_model(default_arch_for(size, 3), num_classes=tr.num_classes, in_channels=3, image_size=size)
    train(clf, tr, TrainConfig(method="standard", epochs=args.clf_epochs, lr=0.05, seed=args.seed), device="cpu")
    cam_train = gradcam(clf, tr.images, tr.labels, gradcam_layer(clf))
    cam_test = gradcam(clf, te.images, te.labels, gradcam_layer(clf))
    with torch.no_grad():
        clf_acc = (clf(te.images).argmax(1) == te.labels).float().mean().item()

    m = len(te)
    rows: list[dict] = []
    for name, maps in compare(
        h_test,
        {
            "gradcam": cam_test,
            "centre": centre_prior(m, size, size),
            "uniform": uniform_map(m, size, size),
            "truemask": te.salience,  # not a baseline a study has: how far the painters' mean is from the truth
        },
    ).items():
        rows.append({"k": None, "choice": name, **maps})

    def fit(pool: torch.Tensor, k: int):
        maps = torch.full_like(h_train, float("nan"))
        maps[pool] = h_train[pool]
        epochs = PredictorConfig.epochs_for(args.steps, pool.numel())
        cfg = PredictorConfig(epochs=epochs, width=args.width, seed=args.seed)
        model = train_predictor(tr.images, maps, cfg, device="cpu").model
        quality = compare(h_test, {"p": predict_maps(model, te.images)})["p"]
        filled = fill_maps(maps, predict_maps(model, tr.images))
        quality["fill_cc"] = float(cc(filled.maps, h_train).mean())
        return model, quality

    sizes = [max(1, round(n * k / 100)) for k in KS]
    start = select_random(n, sizes[0], seed=args.seed)
    full = None
    for choice in ("random", "active"):
        pool = start
        for j, (k, size_k) in enumerate(zip(KS, sizes, strict=True)):
            if size_k == n and full is not None:
                quality = full  # every image painted: the same pool, seed and predictor for both choices
            else:
                model, quality = fit(pool, k)
                if size_k == n:
                    full = quality
            rows.append({"k": k, "painted": int(pool.numel()), "choice": choice, **quality})
            print(f"  k {k:>3} % {choice:<6} CC {quality['cc']:.3f}  ({time.perf_counter() - t0:.0f} s)", flush=True)
            if j + 1 < len(KS):
                unpainted = torch.ones(n, dtype=torch.bool)
                unpainted[pool] = False
                extra = sizes[j + 1] - pool.numel()
                if choice == "random":
                    new = select_random(n, extra, candidates=unpainted, seed=args.seed + k)
                else:
                    new = select_active(
                        model,
                        tr.images,
                        tr.labels,
                        cam_train,
                        extra,
                        candidates=unpainted,
                        painted=~unpainted,
                        seed=args.seed + k,
                    )
                pool = torch.cat([pool, new])

    print(
        f"\nshapes seed {args.seed}: {n} train / {m} test images, 3 simulated annotators, predictor width "
        f"{args.width}, {args.steps} steps per fit; Grad-CAM of a standard cnn32 (clean test acc {clf_acc:.3f}); "
        f"{torch.get_num_threads()} threads, {time.perf_counter() - t0:.0f} s"
    )
    cols = (*MEASURES, "fill_cc")
    print(f"{'k %':>4} {'painted':>7} {'choice':<8}" + "".join(f"{c:>8}" for c in cols))
    for r in rows:
        k_text = "-" if r["k"] is None else str(r["k"])
        print(
            f"{k_text:>4} {r.get('painted', '-')!s:>7} {r['choice']:<8}"
            + "".join(f"{r[c]:>8.3f}" if c in r else f"{'-':>8}" for c in cols)
        )
    for choice in ("random", "active"):
        curve = [r for r in rows if r["choice"] == choice]
        target = 0.95 * curve[-1]["cc"]
        reach = next(r["k"] for r in curve if r["cc"] >= target)
        print(f"{choice}: 95 % of the all-painted held-out CC ({target:.3f}) first reached at k = {reach} %")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows, "classifier_test_accuracy": clf_acc}, f, indent=1)


if __name__ == "__main__":
    main()
