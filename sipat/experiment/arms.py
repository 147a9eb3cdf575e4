"""What a config's ``methods`` and ``variants`` entries mean: a method arm (`Arm`: a training method with its
modifiers, ``pgd_at@eps=0.5x``, ``trades@beta=1``) and a salience variant (`Variant`: a map source with its
modifiers, ``gradcam+top=0.25+displaced``). Both parse their text with errors that say how to write it, and
both have one canonical ``name`` that run ids and result rows use.

Why arms: "perturbing less also buys clean accuracy", so SIP-AT is judged against PGD-AT at several radii
(the clean-vs-robust frontier) and TRADES at several betas, all in one experiment with one budget.
Why the variant tokens: ``top=<share>`` gives soft maps (Grad-CAM) a fixed coverage, and ``displaced`` /
``random`` move that coverage off the salient region / to random pixels (`sipat.controls`), so a control can
tell *where* the maps spare from *how much* they spare.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

SOURCES = ("human", "gradcam", "predicted")
CONTROLS = ("shuffled", "displaced", "random")
#: sources that can fill the images a ``human`` variant leaves without a map (``fill=<source>``)
FILLS = ("gradcam",)
#: how the annotated images that keep their human map are chosen (``choice=<way>``; random is the default)
CHOICES = ("random", "active")
#: methods whose loss has an adversary, so a radius factor means something
ATTACKED_METHODS = frozenset({"pgd_at", "trades", "sip_at", "sip_trades", "clean_mix"})
TRADES_METHODS = frozenset({"trades", "sip_trades"})


def parse_number(value: Any, name: str) -> float:
    """A number or a fraction string such as "3/4" -> float, for settings that are not radii (radii go through
    `sipat.vocabulary.parse_eps`, which also refuses negatives)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(Fraction(value.strip()))
        except (ValueError, ZeroDivisionError):
            pass
    raise ValueError(f"{name} must be a number or a fraction like 8/255, got {value!r}")


@dataclass(frozen=True)
class Arm:
    """A training method with its modifiers: ``eps_factor`` scales the experiment's training radius (and the PGD
    step with it, keeping alpha / eps), ``beta`` replaces TRADES' beta. None = the experiment's value."""

    method: str
    eps_factor: float | None = None
    beta: float | None = None

    @classmethod
    def parse(cls, method: str, modifiers: list[str], entry: str) -> Arm:
        """``method`` with the modifier texts ``eps=<factor>x`` / ``beta=<value>`` (each at most once)."""
        eps_factor: float | None = None
        beta: float | None = None
        for mod in modifiers:
            key, eq, value = mod.partition("=")
            if key == "eps" and eq and eps_factor is None:
                if method not in ATTACKED_METHODS:
                    raise ValueError(f"{entry!r}: {method} trains without an adversary, so it takes no eps factor")
                if not value.endswith("x"):
                    raise ValueError(f"{entry!r}: write the radius as a factor of the training eps, e.g. eps=0.5x")
                eps_factor = parse_number(value[:-1], f"{entry}: eps factor")
                if not eps_factor > 0:
                    raise ValueError(f"{entry!r}: the eps factor must be > 0; got {value}")
            elif key == "beta" and eq and beta is None:
                if method not in TRADES_METHODS:
                    raise ValueError(f"{entry!r}: beta is TRADES' weight; only trades and sip_trades take it")
                beta = parse_number(value, f"{entry}: beta")
                if not beta > 0:
                    raise ValueError(f"{entry!r}: beta must be > 0; got {value}")
            else:
                raise ValueError(
                    f"{entry!r}: unknown or repeated modifier {mod!r}; write e.g. pgd_at@eps=0.5x, trades@beta=1, "
                    "sip_trades@beta=1@human"
                )
        return cls(method, None if eps_factor == 1 else eps_factor, beta)

    @property
    def name(self) -> str:
        """``pgd_at``, ``pgd_at@eps=0.5x``, ``sip_trades@eps=0.5x@beta=1``: the method column and run id part."""
        parts = [self.method]
        if self.eps_factor is not None:
            parts.append(f"eps={self.eps_factor:g}x")
        if self.beta is not None:
            parts.append(f"beta={self.beta:g}")
        return "@".join(parts)


@dataclass(frozen=True)
class Variant:
    """A salience variant: its ``source`` (``none``, ``human``, ``gradcam`` or ``predicted``), ``top`` (binarise
    to this share of each image's pixels; None = the maps as they are), the share of annotated training images
    whose map is removed (``unannotated``), and a ``control`` that moves the maps (``shuffled``: to another
    image; ``displaced``: off the image's own salient region; ``random``: to random pixels; all keep coverage),
    and ``fill``: the source whose maps the images without a human map get (``gradcam``: the reference model's
    Grad-CAM, as the ``gradcam`` variant uses it), so the k-curve can compare no fill, Grad-CAM and the predictor
    on exactly the same blanked images; and ``choice``: how the images that keep their human map are chosen
    (``random``, the default, or ``active``: half at random, the rest by a salience predictor's doubt, as a
    study's active painting pool would; see `sipat.experiment.choice`)."""

    source: str = "none"
    shuffled: bool = False
    unannotated: float = 0.0
    top: float | None = None
    control: str | None = None
    fill: str | None = None
    choice: str = "random"

    def __post_init__(self) -> None:
        if self.shuffled and self.control in (None, "shuffled"):  # Variant(source, shuffled=True) as before
            object.__setattr__(self, "control", "shuffled")
        elif self.shuffled or (self.control is not None and self.control not in CONTROLS):
            raise ValueError(f"control must be one of {', '.join(CONTROLS)}; got {self.control!r}")
        object.__setattr__(self, "shuffled", self.control == "shuffled")
        if self.choice not in CHOICES:
            raise ValueError(f"choice must be one of {', '.join(CHOICES)}; got {self.choice!r}")

    @classmethod
    def parse(cls, text: str) -> Variant:
        """``human``, ``gradcam+top=0.25+displaced``, ``predicted+unannotated=0.75`` ... (tokens after the source
        in any order; at most one of shuffled, displaced, random)."""
        source, *mods = [t.strip() for t in str(text).split("+")]
        if source == "none" and not mods:
            return cls()
        if source not in SOURCES:
            raise ValueError(f"salience variant {text!r}: the source must be one of {', '.join(SOURCES)}")
        unannotated, top, control, fill, choice = 0.0, None, None, None, "random"
        for mod in mods:
            key, _, value = mod.partition("=")
            if key in CONTROLS and not value:
                if control is not None:
                    raise ValueError(f"salience variant {text!r}: one control at most ({control} and {key} given)")
                control = key
            elif key == "unannotated" and value:
                unannotated = parse_number(value, f"{text}: unannotated")
                if not 0 <= unannotated <= 1:
                    raise ValueError(f"salience variant {text!r}: unannotated must be a share in [0, 1]")
            elif key == "top" and value:
                top = parse_number(value, f"{text}: top")
                if not 0 < top < 1:
                    raise ValueError(f"salience variant {text!r}: top is the share of pixels kept, in (0, 1)")
            elif key == "fill" and value:
                if value not in FILLS:
                    raise ValueError(f"salience variant {text!r}: fill must be one of {', '.join(FILLS)}")
                fill = value
            elif key == "choice" and value:
                if value not in CHOICES:
                    raise ValueError(f"salience variant {text!r}: choice must be one of {', '.join(CHOICES)}")
                choice = value
            else:
                raise ValueError(
                    f"salience variant {text!r}: unknown part {mod!r}; write e.g. human, gradcam+shuffled, "
                    "human+unannotated=0.5, gradcam+top=0.25+displaced, human+random, predicted+unannotated=0.9, "
                    "human+unannotated=0.9+fill=gradcam, human+unannotated=0.9+choice=active"
                )
        if source == "predicted" and unannotated == 1:
            raise ValueError(f"salience variant {text!r}: the predictor needs some human maps (unannotated < 1)")
        if fill is not None and source != "human":
            raise ValueError(f"salience variant {text!r}: fill completes human maps; use it as human+...+fill=gradcam")
        if choice != "random" and (source == "gradcam" or not 0 < unannotated < 1):
            raise ValueError(
                f"salience variant {text!r}: choice picks which painted images keep their human map, so it needs "
                "a human or predicted source and 0 < unannotated < 1 (e.g. human+unannotated=0.9+choice=active)"
            )
        return cls(source, False, unannotated, top, control, fill, choice)

    @property
    def name(self) -> str:
        parts = [self.source]
        if self.top is not None:
            parts.append(f"top={self.top:g}")
        if self.control is not None:
            parts.append(self.control)
        if self.unannotated:
            parts.append(f"unannotated={self.unannotated:g}")
        if self.fill is not None:
            parts.append(f"fill={self.fill}")
        if self.choice != "random":  # random is the default: the names of runs made before choice existed stay
            parts.append(f"choice={self.choice}")
        return "+".join(parts)

    @property
    def moved(self) -> bool:
        """The maps are moved by a control that keeps each image's coverage (clean_mix sees no difference)."""
        return self.control is not None


NO_SALIENCE = Variant()


__all__ = [
    "ATTACKED_METHODS",
    "CHOICES",
    "CONTROLS",
    "FILLS",
    "NO_SALIENCE",
    "SOURCES",
    "TRADES_METHODS",
    "Arm",
    "Variant",
    "parse_number",
]
