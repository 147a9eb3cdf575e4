"""Interleaved timing: noisy machines drift, so candidates are run in turns and compared by their medians."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from sipat.training import pick_device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(
    candidates: dict[str, Callable[[], object]], *, repeats: int, device: torch.device, warmup: int = 1
) -> dict[str, float]:
    """Median seconds per call of each candidate, measured round-robin `repeats` times after a warm-up."""
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            _sync(device)
            t = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def report(title: str, medians: dict[str, float], baseline: str, *, per_call: tuple[int, str] | None = None) -> None:
    """Print each candidate's median and its ratio to `baseline`; `per_call=(64, "images")` adds an images/s column."""
    base = medians[baseline]
    w = max(34, *map(len, medians))
    rate = f" {per_call[1] + '/s':>10}" if per_call else ""
    print(f"\n{title}")
    print(f"{'candidate':<{w}} {'median s':>10} {'ratio':>8}{rate}")
    for name, t in medians.items():
        rate = f" {per_call[0] / t:>10.1f}" if per_call else ""
        print(f"{name:<{w}} {t:>10.4f} {t / base:>8.3f}{rate}")
    print(f"(ratio = time / time of '{baseline}', measured in this run)")


def add_machine_args(ap: argparse.ArgumentParser) -> None:
    """--device, --threads and --variants, the same in every timing benchmark."""
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--variants", action=argparse.BooleanOptionalAction, help="bf16 / channels_last (default: on cuda)")


def machine(args: argparse.Namespace) -> tuple[torch.device, bool]:
    """The device to time on (with --threads applied), and whether to time the bf16 / channels_last variants."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    return device, args.variants if args.variants is not None else device.type == "cuda"
