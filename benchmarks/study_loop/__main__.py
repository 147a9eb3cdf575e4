"""A simulated study through the web loop: does active choice of which images people paint beat random
choice, by the number of paintings (issue 20)?

For each seed, a fresh platform (`world.py`: SQLite, the app over HTTP, an inline worker) holds two studies
alike but for `painting_pool` ("random", the default, and "active"), both with `rerank_every`. Simulated
people (`people.py`) take part one after another, the same person j in both; every `--every` paintings the
service queues a `rank_paintings` job from its background refresh, which the active pool's next participants
follow. At those same points the study's stored paintings train a fresh predictor, scored on held-out test
images (`measure.py`). The report pairs the two pools over seeds at each number of paintings.

    .venv/bin/python -m benchmarks.study_loop --seeds 0 1 2 3 --out runs/study-loop [--paintings 100 ...]
    .venv/bin/python -m benchmarks.study_loop --report-only --out runs/study-loop [the same settings]

Each seed's rows land in `--out`/seeds/ when the seed ends: a rerun skips them, two processes with other
`--seeds` can share the folder, and the report gathers every finished seed.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch

from benchmarks.study_loop.measure import Yardstick, measure
from benchmarks.study_loop.people import Population, take_part
from benchmarks.study_loop.report import write_report
from benchmarks.study_loop.world import POOLS, LoopConfig, build_world
from sipat.checkpoints import atomic_write_text
from sipat.predictor import centre_prior, compare, uniform_map

HELP = {
    "dataset": "a built-in set with exact object masks (shapes, premise)",
    "n_train": "training images: the annotation pool",
    "n_test": "held-out test images the predictor is scored on",
    "paintings": "paintings per study",
    "every": "rerank_every of both studies, and the measuring interval",
    "per_session": "annotation trials per participant",
    "min_annotators": "paintings an image needs to count as painted",
    "predictor_steps": "optimiser steps of each measuring predictor",
    "width": "width of each measuring predictor",
}


def run_seed(cfg: LoopConfig, seed: int, log: Any = print) -> list[dict[str, Any]]:
    """The rows of one seed: a baseline row per reference map, then one per pool and measuring point."""
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="study-loop-") as tmp, build_world(Path(tmp), cfg, seed) as world:
        people, yardstick = Population(world.train_masks, seed), Yardstick(world, seed)
        m, (h, w) = len(world.test_ids), world.test_x.shape[-2:]
        baselines = {"centre prior": centre_prior(m, h, w), "uniform": uniform_map(m, h, w)}
        for name, quality in compare(yardstick.test_human, baselines).items():
            rows.append({"seed": seed, "pool": name, "paintings": 0, **quality})
        for pool in POOLS:
            study_id, slug = world.studies[pool]
            person, done = 0, 0
            for point in range(cfg.every, cfg.paintings + 1, cfg.every):
                while done < point:
                    painted = take_part(world, slug, people, person)
                    if not painted:  # the pool ran dry: more sessions would paint nothing either
                        raise SystemExit(f"seed {seed}: {pool} study gave person {person} nothing to paint")
                    done, person = done + len(painted), person + 1
                row = measure(world, study_id, yardstick, steps=cfg.predictor_steps, width=cfg.width, seed=seed)
                rows.append({"seed": seed, "pool": pool, "people": person, **row})
                log(
                    f"seed {seed} {pool:<6} {row['paintings']:>4} paintings of {row['images']:>4} images, "
                    f"{row['rankings']} rankings: CC {row['cc']:.3f}, fill CC {row['fill_cc']:.3f} "
                    f"({time.perf_counter() - t0:.0f} s)"
                )
    return rows


def _seed_file(out: Path, seed: int) -> Path:
    return out / "seeds" / f"seed-{seed}.json"


def gather(out: Path, config: dict[str, Any]) -> tuple[list[dict[str, Any]], list[int], float]:
    """(rows, seeds, seconds) of every finished seed under `out`; a seed run under another config is refused,
    so one report never mixes two settings."""
    rows: list[dict[str, Any]] = []
    seeds: list[int] = []
    seconds = 0.0
    for path in sorted((out / "seeds").glob("seed-*.json")):
        done = json.loads(path.read_text())
        if done["config"] != config:
            raise SystemExit(f"{path} was run with {done['config']}, not {config}: use another --out")
        rows += done["rows"]
        seeds.append(done["seed"])
        seconds += done["seconds"]
    return rows, sorted(seeds), seconds


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = LoopConfig()
    for f in fields(LoopConfig):
        value = getattr(defaults, f.name)
        help_ = f"{HELP[f.name]} (default {value})"
        ap.add_argument(f"--{f.name.replace('_', '-')}", type=type(value), default=None, help=help_)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, required=True, help="folder of the seeds' rows, rows.csv and report.md")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--report-only", action="store_true", help="report the seeds finished under --out")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = LoopConfig(**{f.name: v for f in fields(LoopConfig) if (v := getattr(args, f.name)) is not None})
    config = asdict(cfg)
    gather(args.out, config)  # refuses a folder of another config before anything runs
    for seed in [] if args.report_only else args.seeds:
        path = _seed_file(args.out, seed)
        if path.exists():
            print(f"seed {seed}: done before ({path})")
            continue
        t0 = time.perf_counter()
        rows = run_seed(cfg, seed)
        done = {"config": config, "seed": seed, "seconds": time.perf_counter() - t0, "rows": rows}
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(done, indent=1))
    rows, seeds, seconds = gather(args.out, config)
    if not seeds:
        raise SystemExit(f"no finished seed under {args.out / 'seeds'}: run some seeds first (without --report-only)")
    keys = list(dict.fromkeys(k for row in rows for k in row))
    with open(args.out / "rows.csv", "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    write_report(args.out / "report.md", rows, {**config, "seeds": seeds}, seconds)
    print((args.out / "report.md").read_text())


if __name__ == "__main__":
    main()
