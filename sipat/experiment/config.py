"""What an experiment is: its settings (`ExperimentConfig`, a `configs/*.json` file), the salience variants
(`Variant`) and the planned runs (`RunSpec`, `plan_runs`), with the settings that decide each run's numbers.

The training settings are a `sipat.training.TrainConfig` held by the experiment (``cfg.train``), not a copy of
its fields: one definition of every training knob and its check. Config files keep writing them flat
(``"eps": "8/255"``, ``"epochs": 8``) or as a ``"train"`` mapping; ``cfg.eps`` reads ``cfg.train.eps``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from sipat.data import BUILTIN_DATASETS
from sipat.experiment.arms import NO_SALIENCE, Arm, Variant, parse_number
from sipat.predictor.train import PredictorConfig
from sipat.training import METHODS, Method, TrainConfig
from sipat.vocabulary import DEFAULT_EVAL_EPS, EVAL_ATTACKS, parse_eps, parse_eps_list

CONTROL_METHODS = ("clean_mix",)
EXPERIMENT_METHODS = (*METHODS, *CONTROL_METHODS)
SALIENCE_METHODS = frozenset({"sip_at", "sip_trades", "clean_mix"})
EXTERNAL_DATASETS = ("cifar10", "cifar100", "cub200")
#: built-in datasets whose salience is the exact object mask: simulated annotators can paint them
EXACT_MASK_DATASETS = ("shapes", "premise")

#: TrainConfig fields that differ between the runs of one experiment (set by `ExperimentConfig.train_config`).
PER_RUN_FIELDS = ("method", "seed", "clean_share")
#: TrainConfig fields an experiment sets once for all its runs; config files may write them flat.
TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in PER_RUN_FIELDS)
#: The experiment's budget where it differs from TrainConfig's defaults (alpha: derived, see `train_alpha`).
_BUDGET = {"epochs": 10, "steps": 10}


@dataclass(frozen=True)
class RunSpec:
    """One run: the training method with its modifiers (`Arm`), the salience variant and the seed."""

    method: str
    variant: Variant
    seed: int
    eps_factor: float | None = None
    beta: float | None = None

    @property
    def arm(self) -> Arm:
        return Arm(self.method, self.eps_factor, self.beta)

    @property
    def run_id(self) -> str:
        return f"{self.arm.name}__{self.variant.name}__seed{self.seed}"


# settings that decide a run's numbers (a changed one makes a finished run stale); the rest (device, out,
# save_models, num_workers) only decide where and how fast
_RESULT_FIELDS = (
    "dataset", "dataset_params", "data_seed", "train_limit", "arch", "weights_path", "epochs", "batch_size", "lr",
    "momentum", "weight_decay", "lr_step", "lr_gamma", "eps", "alpha", "steps", "trades_beta", "threshold",
    "amp", "eval_eps", "eval_attacks", "eval_pgd_steps", "eval_apgd_steps", "eval_masked", "eval_limit",
)  # fmt: skip


def _default_train() -> TrainConfig:
    return TrainConfig(epochs=_BUDGET["epochs"], steps=_BUDGET["steps"])


@dataclass(frozen=True, init=False)
class ExperimentConfig:
    """One experiment: dataset, model, training settings, runs and evaluation (a `configs/*.json` file).

    Radii (``eps``, ``alpha``, ``eval_eps``) are in [0, 1] pixel units and may be given as "8/255"; they are read
    by `sipat.vocabulary.parse_eps`, so a negative radius is refused. The training settings are ``train``, a
    `TrainConfig` with its own defaults except the budget: ``epochs`` (10), ``steps`` (10) and ``alpha`` (derived
    from eps and steps unless given). They may be passed flat (``ExperimentConfig(eps="8/255", epochs=3)``), as
    the config files write them, or as ``train=`` (a TrainConfig, or a mapping of its fields from a file); a flat
    one wins over ``train``'s. ``train``'s method, seed and clean_share are set per run by `train_config`.
    """

    name: str = "experiment"
    dataset: str = "mnist5k"
    """A built-in (mnist5k, shapes) or an external set (cifar10, cifar100, cub200; files under ``data_root``)."""
    dataset_params: dict[str, Any] = field(default_factory=dict)
    """Built-ins: `load_builtin` options (e.g. shapes' texture settings); cifar: check_md5; cub200:
    image_size, segmentations."""
    data_root: str | None = None
    data_seed: int | None = None
    """Seeds the built-in data (split or generated images) and the subsets; None: each run's seed does."""
    train_limit: int | None = None
    """Train on a seeded random subset of this many images (None: all)."""
    arch: str | None = None
    """A `sipat.models.ARCHITECTURES` key; None: `default_arch_for` the image size."""
    weights_path: str | None = None
    """A local state-dict file to start every model from (e.g. ImageNet weights for CUB); None: random init."""
    train: TrainConfig = field(default_factory=_default_train)
    """The training settings every run shares (``train.alpha`` is the step in use, see ``alpha``)."""
    alpha: float | None = None
    """PGD step in training as written; None: 2.5 * eps / steps."""
    seeds: tuple[int, ...] = (0, 1, 2)
    methods: tuple[str, ...] = EXPERIMENT_METHODS
    variants: tuple[str, ...] = ("human",)
    reference_epochs: int = 3
    """Epochs of ``standard`` training of the Grad-CAM reference model."""
    predictor: dict[str, Any] = field(default_factory=dict)
    """`sipat.predictor.PredictorConfig` settings (not ``seed``: each run's seed) of the salience predictor that
    fills the images without a human map in ``predicted`` variants and, with ``choice=active``, picks the images
    that keep their human map."""
    annotators: dict[str, Any] | None = None
    """``{"count": 3, "seed": 0}``: the training images' human maps are the mean of ``count`` simulated annotators'
    paintings of the exact object masks (`sipat.predictor.annotators`, seeded by ``seed``; only for
    `EXACT_MASK_DATASETS`); the test images keep the exact masks. None: the exact masks everywhere."""
    active_rounds: int = 1
    """``choice=active``: in how many rounds, after the random first half, the predictor picks the rest."""
    eval_eps: tuple[float, ...] = DEFAULT_EVAL_EPS
    eval_attacks: tuple[str, ...] = ("pgd", "apgd")
    eval_pgd_steps: int = 20
    eval_apgd_steps: int = 100
    eval_masked: bool = True
    eval_limit: int | None = None
    eval_batch_size: int = 256
    save_models: bool = True

    def __init__(self, **settings: Any) -> None:
        """Keyword settings only: this class's fields, and `TRAIN_FIELDS` flat (they go into ``train``)."""
        own = {f.name: f for f in dataclasses.fields(self)}
        flat = {k: settings.pop(k) for k in list(settings) if k in TRAIN_FIELDS and k not in own}
        unknown = sorted(set(settings) - set(own))
        if unknown:
            raise TypeError(f"ExperimentConfig got unknown settings {unknown}")
        for name, f in own.items():
            if name in settings:
                value = settings[name]
            elif f.default_factory is not dataclasses.MISSING:
                value = f.default_factory()
            else:
                value = f.default
            object.__setattr__(self, name, value)
        self._settle(flat)

    def _settle(self, flat: Mapping[str, Any]) -> None:
        """Parse and check the settings, and build ``train`` from it and the flat training settings."""

        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        base: Any = self.train
        if isinstance(base, Mapping):  # a "train" mapping of a config file: TrainConfig's fields over our defaults
            bad = sorted(set(base) - set(TRAIN_FIELDS))
            if bad:
                raise ValueError(f"unknown training settings {bad} under train; known are {list(TRAIN_FIELDS)}")
            flat, base = {**base, **flat}, _default_train()
        elif not isinstance(base, TrainConfig):
            raise TypeError(f"train must be a TrainConfig or a mapping of its fields; got {type(base).__name__}")
        train = {k: getattr(base, k) for k in TRAIN_FIELDS} | dict(flat)
        for name in ("lr", "momentum", "weight_decay", "lr_gamma", "trades_beta"):
            train[name] = parse_number(train[name], name)
        train["eps"] = parse_eps(train["eps"], "eps")
        if train["threshold"] is not None:
            train["threshold"] = parse_number(train["threshold"], "threshold")
        if self.alpha is not None:
            put("alpha", parse_eps(self.alpha, "alpha"))
        put("eval_eps", tuple(parse_eps_list(self.eval_eps, "eval_eps")))
        put("seeds", tuple(int(s) for s in self.seeds))
        put("methods", tuple(self.methods))
        put("variants", tuple(Variant.parse(v).name for v in self.variants))
        put("eval_attacks", tuple(self.eval_attacks))
        put("dataset_params", dict(self.dataset_params or {}))
        put("predictor", dict(self.predictor or {}))
        known = [f.name for f in dataclasses.fields(PredictorConfig) if f.name != "seed"]
        if sorted(set(self.predictor) - set(known)):
            raise ValueError(
                f"unknown predictor settings {sorted(set(self.predictor) - set(known))}; known are {known}"
            )
        PredictorConfig(**self.predictor)  # its own checks
        put("annotators", _check_annotators(self.annotators, self.dataset))
        if isinstance(self.active_rounds, bool) or not isinstance(self.active_rounds, int) or self.active_rounds < 1:
            raise ValueError(f"active_rounds must be an integer >= 1; got {self.active_rounds!r}")
        if self.dataset not in BUILTIN_DATASETS and self.dataset not in EXTERNAL_DATASETS:
            raise ValueError(
                f"dataset must be one of {', '.join([*BUILTIN_DATASETS, *EXTERNAL_DATASETS])}; got {self.dataset!r}"
            )
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct integers; got {list(self.seeds)}")

        def value(name: str) -> Any:
            return train[name] if name in train else getattr(self, name)

        for name in ("epochs", "batch_size", "lr_step", "eval_batch_size"):
            if int(value(name)) < 1:
                raise ValueError(f"{name} must be >= 1; got {value(name)}")
        for name in ("steps", "eval_pgd_steps", "eval_apgd_steps", "reference_epochs", "num_workers"):
            if int(value(name)) < 0:
                raise ValueError(f"{name} must be >= 0; got {value(name)}")
        for name in ("train_limit", "eval_limit"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1 images or null (all); got {getattr(self, name)}")
        unknown = [a for a in self.eval_attacks if a not in EVAL_ATTACKS]
        if unknown or not self.eval_attacks:
            raise ValueError(f"eval_attacks must be some of {', '.join(EVAL_ATTACKS)}; got {list(self.eval_attacks)}")
        train["alpha"] = self.alpha if self.alpha is not None else 2.5 * train["eps"] / max(int(train["steps"]), 1)
        put("train", TrainConfig(**train))  # method, seed, clean_share: TrainConfig's until `train_config`
        items = plan_items(self)  # validates methods against variants
        # an error where no batch reaches eps, not only train's warning: the tables would name a radius that no
        # run trained at (a ramp as long as the run reaches it in the last batch; train warns about that one)
        ramp_problem = self.train.eps_ramp_problem()  # train's own method is sip_at: this looks at eps only
        never = self.train.eps_ramp_epochs > self.train.epochs
        if ramp_problem is not None and never and any(arm.method != "standard" for arm, _ in items):
            raise ValueError(ramp_problem)

    def __getattr__(self, name: str) -> Any:
        """``cfg.eps``, ``cfg.epochs`` ...: the training settings read flat, as the config files write them."""
        train = self.__dict__.get("train")
        if name in TRAIN_FIELDS and train is not None:
            return getattr(train, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def train_alpha(self) -> float:
        """The PGD step training uses: ``alpha`` as given, else 2.5 * eps / max(steps, 1)."""
        return self.train.alpha

    def train_config(self, method: str, seed: int, **changes: Any) -> TrainConfig:
        """The `TrainConfig` of one run: the shared settings with this run's method and seed (and ``changes``)."""
        return dataclasses.replace(self.train, method=cast(Method, method), seed=seed, **changes)  # it checks method

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON values, flat (as the config files write them); `from_dict` reads it back."""
        own = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "train"}
        flat = {k: getattr(self.train, k) for k in TRAIN_FIELDS if k != "alpha"}
        return json.loads(json.dumps(own | flat))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ExperimentConfig:
        known = {f.name for f in dataclasses.fields(cls)} | set(TRAIN_FIELDS)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown experiment settings {unknown}; known are {sorted(known)}")
        return cls(**d)

    @classmethod
    def from_file(cls, path: str | Path) -> ExperimentConfig:
        """Read a JSON (or, with PyYAML, YAML) config; keys are the field names of this class."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"experiment config {path} does not exist (see configs/ for examples)")
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text)
            else:
                data = json.loads(text)
        except (json.JSONDecodeError, ImportError) as exc:
            raise ValueError(f"cannot read experiment config {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"experiment config {path} must hold a mapping of settings")
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> ExperimentConfig:
        """A copy with ``changes`` (None values are ignored: a CLI flag that was not given)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def _check_annotators(value: Any, dataset: str) -> dict[str, int] | None:
    """``annotators`` with its defaults filled in (count 3, seed 0), or a clear error."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f'annotators must be a mapping like {{"count": 3, "seed": 0}} or null; got {value!r}')
    unknown = sorted(set(value) - {"count", "seed"})
    if unknown:
        raise ValueError(f"unknown annotators settings {unknown}; known are ['count', 'seed']")
    out = {"count": value.get("count", 3), "seed": value.get("seed", 0)}
    for name, low in (("count", 1), ("seed", 0)):
        v = out[name]
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"annotators {name} must be an integer >= {low}; got {v!r}")
    if dataset not in EXACT_MASK_DATASETS:
        raise ValueError(
            f"annotators paint the exact object masks, which {dataset} does not have; "
            f"use them with {' or '.join(EXACT_MASK_DATASETS)}"
        )
    return out


def _split_entry(entry: str) -> tuple[str, list[str], list[str] | None]:
    """``method@mod@...@variant,variant`` -> (method, modifier texts, variant texts or None when not given).
    A part after ``@`` is a modifier when it starts with ``eps=`` or ``beta=``, else a list of variants."""
    name, *parts = [p.strip() for p in str(entry).split("@")]
    mods = [p for p in parts if p.startswith(("eps=", "beta="))]
    lists = [p for p in parts if not p.startswith(("eps=", "beta="))]
    if len(lists) > 1:
        raise ValueError(f"{entry!r}: give the variants once, comma-separated (e.g. sip_at@human,gradcam)")
    return name, mods, ([v for v in lists[0].split(",")] if lists else None)


def plan_items(cfg: ExperimentConfig) -> list[tuple[Arm, Variant]]:
    """(arm, variant) pairs in config order, without duplicates.

    A ``methods`` entry is ``<method>[@eps=<factor>x][@beta=<value>][@<variant>,<variant>...]``: the modifiers
    make an `Arm`; a salience method runs with the listed variants, else with every one of ``variants``.
    ``clean_mix`` depends only on coverage, which a control (shuffled, displaced, random) keeps: it skips them.
    """
    variants = [Variant.parse(v) for v in cfg.variants]
    items: list[tuple[Arm, Variant]] = []
    for entry in cfg.methods:
        name, mods, only = _split_entry(entry)
        if name not in EXPERIMENT_METHODS:
            raise ValueError(f"unknown method {name!r} in methods; choose from {', '.join(EXPERIMENT_METHODS)}")
        arm = Arm.parse(name, mods, str(entry))
        if name not in SALIENCE_METHODS:
            if only is not None:
                raise ValueError(f"{entry!r}: {name} uses no salience, so it takes no @variant")
            items.append((arm, NO_SALIENCE))
            continue
        chosen = [Variant.parse(v) for v in only] if only is not None else variants
        if not chosen:
            raise ValueError(f"{name} needs at least one salience variant (variants, or {name}@human)")
        for v in chosen:
            if v.source == "none":
                raise ValueError(f"{entry!r}: {name} needs maps; give it a source (human, gradcam, predicted)")
            if name == "clean_mix" and v.moved:
                if only is not None:
                    raise ValueError(f"{entry!r}: clean_mix depends only on coverage, which {v.control} keeps")
                continue
            items.append((arm, v))
    return list(dict.fromkeys(items))


def plan_runs(cfg: ExperimentConfig) -> list[RunSpec]:
    """All runs, seed by seed (so an interrupted experiment has whole seeds first)."""
    items = plan_items(cfg)
    return [RunSpec(a.method, v, s, a.eps_factor, a.beta) for s in cfg.seeds for a, v in items]


# TrainConfig fields of the recipe and the validation split: in a run's settings only where they differ from
# TrainConfig's defaults, so runs made before these knobs existed (with the defaults) stay finished
_RECIPE_FIELDS = ("eps_ramp_epochs", "warmup_epochs", "grad_clip", "augment", "crop_padding", "flip", "val_share",
                  "val_steps", "patience")  # fmt: skip
_DEFAULTS = {k: getattr(TrainConfig(), k) for k in _RECIPE_FIELDS}


def run_settings(cfg: ExperimentConfig, run: RunSpec) -> dict[str, Any]:
    """Everything that decides a run's numbers, as JSON values (compared on resume).

    An arm's modifiers enter as the radius and step it trains with (``train_eps``, ``train_alpha``) and its
    ``trades_beta``; the recipe knobs where set; the reference epochs where Grad-CAM is used; the predictor's
    settings for a ``predicted`` variant or ``choice=active``; the simulated annotators where maps are used and
    set; the active rounds for ``choice=active``.
    """
    settings = {k: getattr(cfg, k) for k in _RESULT_FIELDS}
    settings.update(method=run.method, variant=run.variant.name, seed=run.seed, alpha=cfg.train_alpha)
    settings.update({k: getattr(cfg.train, k) for k in _RECIPE_FIELDS if getattr(cfg.train, k) != _DEFAULTS[k]})
    if not cfg.train.augment:  # the flip is part of the augmentation: without it, it decides nothing
        settings.pop("flip", None)
    if run.eps_factor is not None:
        f = run.eps_factor
        settings.update(arm=run.arm.name, train_eps=cfg.eps * f, train_alpha=cfg.train_alpha * f)
    if run.beta is not None:
        settings.update(arm=run.arm.name, trades_beta=run.beta)
    if "gradcam" in (run.variant.source, run.variant.fill) or cfg.dataset in ("cifar10", "cifar100", "fashion"):
        settings["reference_epochs"] = cfg.reference_epochs
    if run.variant.source == "predicted" or run.variant.choice == "active":
        settings["predictor"] = dict(cfg.predictor)
    if run.variant.choice == "active":
        settings.update(reference_epochs=cfg.reference_epochs, active_rounds=cfg.active_rounds)
    if cfg.annotators is not None and run.variant.source in ("human", "predicted"):
        settings["annotators"] = dict(cfg.annotators)
    return json.loads(json.dumps(settings))
