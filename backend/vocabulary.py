"""The names both sides of the torch line use: methods, attacks, the eval grid, image files, the manifest format,
bounding boxes and eps values, and the training recipe with its eps-ramp rule.

Standard library only. DESIGN.md lets imports point only `worker -> sipat` and `worker -> backend`: `sipat` imports
nothing of ours and `backend` (which must start without torch) imports no `sipat`. So this one text stands twice,
as `sipat/vocabulary.py` (what the library runs) and `backend/vocabulary.py` (what the web validates with), and
`tests/test_vocabulary.py` fails unless the two files are byte-identical: one definition, two import paths.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from fractions import Fraction
from typing import Any, Final, Literal, get_args

#: Training objectives of `sipat.training` (the SIP-AT paper's method and its baselines); the `Literal` is what
#: `sipat.train_config.TrainConfig` and the web's train-job requests are typed with, the tuple what code iterates.
Method = Literal["standard", "pgd_at", "trades", "sip_at", "sip_trades"]
METHODS: Final[tuple[str, ...]] = get_args(Method)
#: The methods whose adversary spares the salient pixels (they need salience maps).
MASKED_METHODS: Final = frozenset({"sip_at", "sip_trades"})


#: The training recipe's knob values (eps ramp, lr warm-up, gradient-norm clipping, weight decay, crop + flip):
#: what `sipat train --recipe` and the web's train jobs use by default. Defined here, torch-free, so that the
#: web's job parameters take their defaults from the same dict that `sipat.train_config` applies. ``flip``
#: belongs to ``augment``: off, the augmentation is the padded crop alone, for data whose class or cue a mirror
#: image changes (digits, oriented textures).
RECIPE: dict[str, Any] = {
    "eps_ramp_epochs": 10,
    "warmup_epochs": 5,
    "grad_clip": 10.0,
    "weight_decay": 5e-4,
    "augment": True,
    "crop_padding": 4,
    "flip": True,
}


def eps_ramp_problem(method: str, eps: float, epochs: int, eps_ramp_epochs: int) -> str | None:
    """What is wrong with an eps ramp as long as the run or longer, else None; the message says what to fix.

    Such a run never trains at ``eps`` (or only in its very last batch), so its model and every number reported
    for it belong to a smaller radius than the one its settings name. ``standard`` training and eps 0 have no
    radius to reach. One rule for `sipat.train_config.TrainConfig` (``train`` warns, an experiment config
    refuses a ramp longer than the run) and the web's train jobs (refused with 422 at submission).
    """
    if method == "standard" or eps == 0 or eps_ramp_epochs < epochs:
        return None
    if eps_ramp_epochs == epochs:
        reached = f"reaches eps {eps:.4g} only in the last batch"
    else:
        reached = f"never reaches eps {eps:.4g} (it ends at {eps * epochs / eps_ramp_epochs:.4g})"
    return (
        f"eps_ramp_epochs ({eps_ramp_epochs}) >= epochs ({epochs}): the training radius {reached}; "
        "set eps_ramp_epochs below epochs (e.g. a third of them) or train more epochs"
    )


#: Attacks a robustness evaluation can run (keys of `sipat.attacks.registry.ATTACKS`); the `Literal` is what the
#: web side's request models validate with, the tuple what everything else iterates.
EvalAttack = Literal["pgd", "apgd", "fgsm", "apgd-t", "fab-t", "square", "autoattack"]
EVAL_ATTACKS: Final[tuple[str, ...]] = get_args(EvalAttack)
#: The attacks a train job's closing evaluation may run: the quick ones of `EVAL_ATTACKS` (a few gradient steps per
#: image), so that the evaluation stays small beside the training; an `evaluate` job runs any of `EVAL_ATTACKS`.
TrainEvalAttack = Literal["pgd", "apgd", "fgsm"]
TRAIN_EVAL_ATTACKS: Final[tuple[str, ...]] = get_args(TrainEvalAttack)
#: Attacks a stimulus set can be made with (`stimulus_sets.attack`, migration 0009): those of `EVAL_ATTACKS` whose
#: result is a perturbation of the set's radius for every image the model classifies correctly ("square" keeps the
#: point of lowest margin when it fails). Left out, because they return the clean image for every sample they do
#: not break, which would put unperturbed images among the "perturbed" trials of a detection study: "apgd-t"
#: (a fooling point or x), "fab-t" (the *smallest* adversarial perturbation, or x) and "autoattack" (the first
#: fooling point of its members, or x).
StimulusAttack = Literal["pgd", "fgsm", "apgd", "square"]
STIMULUS_ATTACKS: Final[tuple[str, ...]] = get_args(StimulusAttack)
#: The stimulus attacks that exist for the L-inf norm only (pgd alone also runs in L2).
LINF_ONLY_ATTACKS: Final = frozenset({"fgsm", "apgd", "square"})
#: The architectures of `sipat.models.ARCHITECTURES`.
ARCHITECTURES: Final = ("small_cnn", "cnn32", "resnet18", "resnet50", "densenet121")
#: The paper's evaluation grid: L-inf radii in [0, 1] pixel units.
DEFAULT_EVAL_EPS: Final = (0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255)

#: File name suffixes read as images (lower case; Pillow decodes them all).
IMAGE_EXTENSIONS: Final = frozenset(
    {".png", ".jpg", ".jpeg", ".jfif", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
#: The authors' CSV manifest: required columns, then the optional salience columns (at most one filled per row).
MANIFEST_REQUIRED_COLUMNS: Final = ("image_path", "image_class")
MANIFEST_SALIENCE_COLUMNS: Final = ("salience_map_path", "bounding_boxes")

Box = list[float]


def parse_eps(value: Any, name: str = "eps") -> float:
    """An L-inf radius in [0, 1] pixel units from a number or a string ("8/255", "0.0314").

    Raises ValueError naming `name` and the input for anything else, a negative, infinite or NaN value, or a
    value above 1 (the pixel range): a radius is never negative, and one above 1 perturbs every pixel freely.
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number or a fraction like 8/255; got {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(Fraction(value.strip()))
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"{name} must be a number or a fraction like 8/255; got {value!r}") from None
    else:
        raise ValueError(f"{name} must be a number or a fraction like 8/255; got {value!r}")
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be a radius >= 0 (in [0, 1] pixel units, e.g. 8/255); got {value!r}")
    if number > 1:
        raise ValueError(f"{name} is in [0, 1] pixel units (8/255 = 0.0314); got {value!r}")
    return number


def parse_eps_list(values: str | Iterable[Any], name: str = "eps") -> list[float]:
    """Several radii, from an iterable or a comma/space separated string ("0, 2/255 8/255"); sorted, unique."""
    if isinstance(values, str):
        values = [p for p in values.replace(";", ",").replace(" ", ",").split(",") if p.strip()]
    out = sorted({parse_eps(v, name) for v in values})
    if not out:
        raise ValueError(f"give at least one {name}, e.g. 0, 2/255, 8/255 (0 gives the clean accuracy)")
    return out


#: How near (in grey levels, 1/255) a radius must be to a whole level to count as one. Loose on purpose: stored
#: values keep 6 significant digits (8/255 comes back from a job's metrics as 0.0313725, 1e-5 levels off), and
#: an 8-bit stimulus cannot tell radii a thousandth of a level apart, so no radius one can apply is misread.
GREY_LEVEL_TOLERANCE: Final = 1e-3


def whole_grey_levels(e: float) -> bool:
    """Whether `e` (in [0, 1] pixel units) is a whole number of grey levels, up to `GREY_LEVEL_TOLERANCE`."""
    k = e * 255
    return abs(k - round(k)) < GREY_LEVEL_TOLERANCE


def in_255ths(grid: Iterable[float]) -> bool:
    """Whether every radius of `grid` is a whole number of grey levels up to 64/255 (then labelled "8/255")."""
    values = list(grid)
    return all(whole_grey_levels(e) for e in values) and max(values, default=0) <= 64 / 255


def eps_label(e: float, in_255: bool = True) -> str:
    """`e` as "8/255" for a whole number of grey levels (when `in_255`), "0" for zero, else the shortest decimal.
    One label for the CLI, the experiment reports and the dashboard's tables, columns and template filter."""
    k = e * 255
    return f"{round(k)}/255" if in_255 and whole_grey_levels(e) and round(k) > 0 else f"{e:g}"


def grid_labels(grid: Iterable[float]) -> list[str]:
    """Labels of a whole grid, in 1/255 units only when every value is one (so a table's columns agree)."""
    values = list(grid)
    whole = in_255ths(values)
    return [eps_label(e, whole) for e in values]


def parse_boxes(text: str, image_size: tuple[int, int]) -> list[Box]:
    """Bounding boxes ``[[x, y, w, h], ...]`` (JSON, top-left origin, pixels of the image) -> checked floats.

    A single flat ``[x, y, w, h]`` is accepted too. Zero width or height is allowed and marks nothing (the authors
    write ``[[0, 0, 0, 0]]`` for "no salient region"); a negative size or a box reaching outside the
    ``image_size = (width, height)`` image is a ValueError saying which box.
    """
    try:
        boxes = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"bounding_boxes is not valid JSON ({exc.msg}): {text!r}") from None

    def number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)

    if isinstance(boxes, list) and len(boxes) == 4 and all(number(v) for v in boxes):
        boxes = [boxes]
    if not isinstance(boxes, list):
        raise ValueError(f"bounding_boxes must be a JSON list of [x, y, w, h] boxes; got {text!r}")
    width, height = image_size
    out: list[Box] = []
    for box in boxes:
        if not isinstance(box, list) or len(box) != 4 or not all(number(v) for v in box):
            raise ValueError(f"bounding box {box!r} is not [x, y, w, h] with 4 finite numbers")
        x, y, w, h = (float(v) for v in box)
        if w < 0 or h < 0:
            raise ValueError(f"bounding box {box} has a negative width or height")
        tol = 1e-6
        if x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
            raise ValueError(f"bounding box {box} (x, y, w, h) reaches outside the {width}x{height} image")
        out.append([x, y, w, h])
    return out
