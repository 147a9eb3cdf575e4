"""Clean and robust accuracy over an eps grid.

Robust accuracy at eps is the share of samples still classified correctly under the attack; samples that
are wrong on clean inputs count as wrong without being attacked (an attack cannot help them), which saves
their compute. The attacks are unmasked by default: a SIP-AT model is judged by the same adversary as
every baseline. `masked=True` attacks only the non-salient pixels instead, which shows a model that is
robust only where it was trained to be.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from sipat.attacks import apgd, eval_mode, fgsm, pgd
from sipat.salience import to_mask
from sipat.training import pick_device

DEFAULT_EPS_GRID = (0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255)
ATTACKS = ("pgd", "apgd", "fgsm")


@dataclass
class EvalResult:
    """clean_acc and, per attack, {eps: robust accuracy}; n samples."""

    n: int
    clean_acc: float
    robust_acc: dict[str, dict[float, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "clean_acc": self.clean_acc,
            "robust_acc": {a: {f"{e:.6g}": acc for e, acc in grid.items()} for a, grid in self.robust_acc.items()},
        }


def _attack(
    name: str,
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    mask: Tensor | None,
    *,
    pgd_steps: int,
    apgd_steps: int,
    generator: torch.Generator,
) -> Tensor:
    if name == "pgd":
        return pgd(model, x, y, eps, 2.5 * eps / max(pgd_steps, 1), pgd_steps, mask=mask, generator=generator)
    if name == "apgd":
        return apgd(model, x, y, eps, apgd_steps, loss="ce", mask=mask, generator=generator)
    return fgsm(model, x, y, eps, mask=mask)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Dataset | DataLoader,
    *,
    eps_grid: Sequence[float] = DEFAULT_EPS_GRID,
    attacks: Sequence[str] = ("pgd", "apgd"),
    pgd_steps: int = 20,
    apgd_steps: int = 100,
    masked: bool = False,
    threshold: float | None = 0.5,
    batch_size: int = 128,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> EvalResult:
    """Clean accuracy, and robust accuracy under each attack at each eps of the grid.

    Args:
        model: maps [0, 1] images to logits. Evaluated in eval mode; its modes are restored after.
        data: a Dataset of (image, label, salience) or a DataLoader of such batches.
        eps_grid: L-inf radii in image units; 0 gives the clean accuracy.
        attacks: any of "pgd" (PGD-`pgd_steps`, step 2.5 * eps / steps, random start), "apgd" (APGD-CE,
            `apgd_steps`), "fgsm".
        masked: attack only pixels with mask 1 (from each image's salience map; images without a map are
            attacked everywhere).
        seed: seeds the attacks' random starts.
        progress: called with (fraction done, message) after each batch.
    """
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown:
        raise ValueError(f"unknown attacks {unknown}; choose from {', '.join(ATTACKS)}")
    if any(e < 0 for e in eps_grid):
        raise ValueError("eps values must be >= 0")
    dev = pick_device(device)
    loader = data if isinstance(data, DataLoader) else DataLoader(data, batch_size=batch_size, shuffle=False)
    gen = torch.Generator(device=dev).manual_seed(seed)
    grid = sorted({float(e) for e in eps_grid})
    n = 0
    clean_correct = 0
    correct = {a: dict.fromkeys(grid, 0) for a in attacks}
    model.to(dev)
    with eval_mode(model):
        total = len(loader)
        for i, (x, y, s) in enumerate(loader):
            x, y, s = x.to(dev), y.to(dev), s.to(dev)
            ok = model(x).argmax(1) == y
            n += y.shape[0]
            clean_correct += int(ok.sum())
            xs, ys = x[ok], y[ok]
            mask = to_mask(s[ok], threshold) if masked else None
            for a in attacks:
                for e in grid:
                    if e == 0 or xs.shape[0] == 0:
                        correct[a][e] += xs.shape[0]
                        continue
                    x_adv = _attack(
                        a, model, xs, ys, e, mask, pgd_steps=pgd_steps, apgd_steps=apgd_steps, generator=gen
                    )
                    correct[a][e] += int((model(x_adv).argmax(1) == ys).sum())
            if progress is not None:
                progress((i + 1) / total, f"evaluated {n} images")
    if n == 0:
        raise ValueError("the evaluation set is empty")
    return EvalResult(
        n=n,
        clean_acc=clean_correct / n,
        robust_acc={a: {e: c / n for e, c in per_eps.items()} for a, per_eps in correct.items()},
    )


def format_table(result: EvalResult) -> str:
    """A Markdown table: one row per attack, one column per eps (in 1/255 units when they are round)."""
    grid = sorted({e for per in result.robust_acc.values() for e in per})

    def label(e: float) -> str:
        k = e * 255
        return f"{round(k)}/255" if abs(k - round(k)) < 1e-6 and 0 < k <= 32 else f"{e:g}"

    head = "| attack | " + " | ".join(f"eps {label(e)}" for e in grid) + " |"
    rule = "|---|" + "---|" * len(grid)
    rows = [f"| {a} | " + " | ".join(f"{per[e]:.4f}" for e in grid) + " |" for a, per in result.robust_acc.items()]
    return "\n".join([f"clean accuracy {result.clean_acc:.4f} on {result.n} images", "", head, rule, *rows])
