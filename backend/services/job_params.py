"""Parameters of the worker jobs, validated where they enter (the research API, the dev server, the worker).

Torch-free on purpose: the API validates a request with these models and stores `model_dump(mode="json")` as
the job's `params`; the worker validates the stored dict again before it starts. Units: eps, alpha and the
eval grid are L-inf radii in [0, 1] pixel units (8/255 = 0.0314); lr is SGD's learning rate.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from backend.services.errors import InvalidInputError
from backend.vocabulary import (
    ARCHITECTURES,
    DEFAULT_EVAL_EPS,
    MASKED_METHODS,
    RECIPE,
    EvalAttack,
    Method,
    TrainEvalAttack,
)

#: Salience sources that read a study's paintings (and need `study_id`).
STUDY_SOURCES = ("annotations", "predicted")
# The defaults of the attack lists (the names themselves, and what each job may run, are `backend.vocabulary`'s).
_TRAIN_EVAL_ATTACKS: tuple[TrainEvalAttack, ...] = ("pgd",)
_EVALUATE_ATTACKS: tuple[EvalAttack, ...] = ("pgd", "apgd")


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_grid(values: list[float]) -> list[float]:
    if not values:
        raise ValueError("give at least one eps (0 gives the clean accuracy)")
    if any(not 0 <= v <= 1 for v in values):
        raise ValueError("eps values are L-inf radii in [0, 1] pixel units, e.g. 0.0314 for 8/255")
    return sorted({float(v) for v in values})


class TrainParams(_Params):
    """A `train` job: one model on a dataset with one method, then its evaluation on the held-out images."""

    dataset_id: int = Field(description="Dataset to train on (images of split 'test' are held out).")
    method: Method = Field(default="sip_at", description="Training objective.")
    arch: str | None = Field(
        default=None,
        description=f"Architecture, one of {', '.join(ARCHITECTURES)}; null picks one from the image size "
        "(small_cnn for <= 28 px grey, cnn32 up to 64 px, resnet18 above).",
    )
    image_size: int | None = Field(
        default=None,
        ge=8,
        le=1024,
        description="Side in pixels the images are resized to (square); null keeps the dataset's size, which "
        "must then be the same for every image.",
    )
    # 20: the recipe's 10-epoch eps ramp (default below) then 10 epochs at the full eps; at 10 (the ramp's length)
    # a default job reached eps only in its last batch
    epochs: int = Field(
        default=2 * RECIPE["eps_ramp_epochs"],
        ge=1,
        le=1000,
        description="Training epochs; with the default eps ramp (10) the second half trains at the full eps.",
    )
    batch_size: int = Field(default=32, ge=1, le=4096)
    lr: float = Field(default=0.1, gt=0, le=10)
    eps: float = Field(default=8 / 255, ge=0, le=1, description="Training radius (L-inf, [0, 1] units).")
    alpha: float = Field(default=1 / 255, ge=0, le=1, description="PGD step size (L-inf, [0, 1] units).")
    steps: int = Field(default=10, ge=0, le=1000, description="PGD steps of the inner maximisation.")
    threshold: float | None = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Salience threshold of the binary mask m = (s < threshold); null for the soft mask 1 - s.",
    )
    seed: int = Field(default=0, ge=0)
    # The training recipe (`sipat.train_config`): the defaults are `RECIPE`'s, as `sipat train --recipe`.
    eps_ramp_epochs: int = Field(
        default=RECIPE["eps_ramp_epochs"],
        ge=0,
        le=1000,
        description="The training radius grows linearly from 0 to eps over this many epochs (alpha with it); "
        "0 = the full radius from the first batch. A run shorter than the ramp never trains at the full eps.",
    )
    warmup_epochs: int = Field(
        default=RECIPE["warmup_epochs"],
        ge=0,
        le=1000,
        description="The learning rate grows linearly to lr over this many epochs; 0 = no warm-up.",
    )
    grad_clip: float | None = Field(
        default=RECIPE["grad_clip"],
        gt=0,
        le=1e6,
        description="Largest global L2 norm of the gradient; null = no clipping.",
    )
    weight_decay: float = Field(
        default=RECIPE["weight_decay"], ge=0, le=1, description="SGD's L2 penalty (5e-4 is the AT norm)."
    )
    augment: bool = Field(
        default=RECIPE["augment"],
        description="Random crop (after zero padding by crop_padding px) and, with flip, a horizontal flip, of "
        "the image and its salience map together.",
    )
    crop_padding: int = Field(default=RECIPE["crop_padding"], ge=0, le=256, description="Pixels, with augment.")
    flip: bool = Field(
        default=RECIPE["flip"],
        description="With augment: also flip horizontally (probability 1/2). false = crop only, for data a mirror "
        "image changes (digits, oriented textures).",
    )
    val_share: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="Share of the training images held out (seeded) to keep the epoch of the best robust "
        "validation accuracy (against robust overfitting); 0 = no validation, the last epoch is kept.",
    )
    val_steps: int = Field(default=10, ge=0, le=1000, description="PGD steps of the validation attack (at eps).")
    patience: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Stop after this many epochs without a better validation score (needs val_share > 0); "
        "null = train all epochs.",
    )
    salience: Literal["annotations", "predicted", "imported", "gradcam", "none"] = Field(
        default="imported",
        description="Where the salience maps of the sip_* methods come from: the study's annotations (mean of "
        "the annotators' masks), 'predicted' (those annotations where an image has min_annotators, the maps of "
        "a salience predictor trained on them for every other image), the dataset's imported maps, Grad-CAM "
        "of a reference model, or none.",
    )
    study_id: int | None = Field(
        default=None, description="Study whose annotations are used (salience=annotations or predicted)."
    )
    min_annotators: int | None = Field(
        default=None,
        ge=1,
        description="Annotations an image needs for its mean map to be used; null takes the study's setting.",
    )
    fallback: Literal["gradcam", "none"] = Field(
        default="none",
        description="Salience of images without a map of the chosen source (too few annotations, nothing "
        "imported): Grad-CAM of the reference model, or none (mask 1: plain adversarial training for them). "
        "Not used with salience=predicted, where the predictor fills every such image.",
    )
    reference_model_id: int | None = Field(
        default=None,
        description="Model whose Grad-CAM gives automatic salience; null trains a quick standard model "
        "(reference_epochs) on the same training images first.",
    )
    reference_epochs: int = Field(default=1, ge=1, le=100)
    predictor_epochs: int = Field(
        default=20,
        ge=1,
        le=500,
        description="salience=predicted: epochs of the salience predictor (`sipat.predictor`) on the images "
        "with a human map (seeded with seed).",
    )
    predictor_batch_size: int = Field(default=32, ge=1, le=4096, description="salience=predicted: its batch size.")
    eval_eps: list[float] = Field(default_factory=lambda: list(DEFAULT_EVAL_EPS))
    eval_attacks: list[TrainEvalAttack] = Field(default_factory=lambda: list(_TRAIN_EVAL_ATTACKS), min_length=1)
    eval_steps: int = Field(default=20, ge=1, le=1000, description="Steps of the evaluation attacks.")
    name: str | None = Field(default=None, max_length=255, description="Name of the model row.")

    @field_validator("eval_eps")
    @classmethod
    def _check_eval_eps(cls, value: list[float]) -> list[float]:
        return _check_grid(value)

    @field_validator("arch")
    @classmethod
    def _check_arch(cls, value: str | None) -> str | None:
        if value is not None and value not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {value!r}; choose one of {', '.join(ARCHITECTURES)}")
        return value

    @model_validator(mode="after")
    def _check_salience(self) -> TrainParams:
        if self.patience is not None and self.val_share == 0:
            raise ValueError("patience (early stopping) needs a validation split: set val_share > 0, e.g. 0.1")
        if self.salience in STUDY_SOURCES and self.study_id is None:
            raise ValueError(f"salience '{self.salience}' needs study_id: the study whose annotations to use")
        if self.method in MASKED_METHODS and self.salience == "none" and self.fallback == "none":
            raise ValueError(
                f"method {self.method} without salience is plain adversarial training; set salience to "
                "annotations, imported or gradcam (or choose method pgd_at/trades)"
            )
        return self


class EvaluateParams(_Params):
    """An `evaluate` job: clean and robust accuracy of a stored model on a dataset's images.

    The attacks are those of `sipat.attacks.registry` (`backend.vocabulary.EVAL_ATTACKS`), with the budgets of
    the CLI (`sipat evaluate`): PGD `steps` (20), APGD / APGD-T / FAB-T `apgd_steps` (100, AutoAttack's),
    `n_targets` (9) and Square `square_queries` (5,000). "autoattack" is the standard ensemble; its result
    holds the per-sample worst case beside each stage's column (see `sipat.evaluation`).
    """

    model_id: int
    dataset_id: int | None = Field(default=None, description="Dataset to evaluate on; null: the model's own.")
    split: str | None = Field(default="test", description="Images of this split only; null for all images.")
    eps: list[float] = Field(default_factory=lambda: list(DEFAULT_EVAL_EPS))
    attacks: list[EvalAttack] = Field(
        default_factory=lambda: list(_EVALUATE_ATTACKS),
        min_length=1,
        description="Any of pgd, apgd (APGD-CE), fgsm, apgd-t, fab-t, square, autoattack (the ensemble with "
        "its per-sample worst case).",
    )
    steps: int = Field(default=20, ge=1, le=1000, description="PGD iterations (step 2.5 * eps / steps).")
    apgd_steps: int = Field(default=100, ge=1, le=1000, description="Iterations of APGD, APGD-T and FAB-T.")
    n_targets: int = Field(default=9, ge=1, le=99, description="Target classes of APGD-T and FAB-T.")
    square_queries: int = Field(default=5000, ge=1, le=100_000, description="Model queries per image of Square.")
    autoattack_every_sample: bool = Field(
        default=False,
        description="Also run each ensemble member on every clean-correct image for its own column "
        "('autoattack/<attack>'); costs every member in full.",
    )
    masked: bool = Field(default=False, description="Attack only the non-salient pixels (imported maps).")
    seed: int = Field(default=0, ge=0)
    key: str | None = Field(
        default=None, max_length=200, description="Key of the model's metrics the result is stored under."
    )

    @field_validator("eps")
    @classmethod
    def _check_eps(cls, value: list[float]) -> list[float]:
        return _check_grid(value)

    @field_validator("attacks")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class GenerateStimuliParams(_Params):
    """A `generate_stimuli` job: what to make is described by the stimulus set row itself."""

    stimulus_set_id: int


class StimulusSetOptions(_Params):
    """`StimulusSet.params`: which images of the dataset get stimuli, and details of the attack.

    The set's own columns say the rest: `attack` (`backend.vocabulary.STIMULUS_ATTACKS`), `norm` (linf; l2 with
    pgd only), `eps_levels` (0 = the clean image, always made), `masked` (spare the salient pixels), `steps`,
    `model_id`.
    """

    split: str | None = Field(default=None, description="Only images of this split (e.g. 'test'); null: all.")
    n_images: int | None = Field(
        default=None, ge=1, description="How many images, drawn with `seed` from those of the split; null: all."
    )
    seed: int = Field(default=0, ge=0, description="Seeds the image draw, the attacks' random starts, catch noise.")
    alpha: float | None = Field(
        default=None, gt=0, le=1, description="PGD step size; null: 2.5 * eps / steps (as in the evaluation)."
    )
    salience_source: Literal["human_mean", "imported", "gradcam"] | None = Field(
        default=None,
        description="Which salience maps make the mask (masked sets); null: the first of human_mean, imported, "
        "gradcam that an image has. Images without any map are attacked everywhere.",
    )
    threshold: float = Field(default=0.5, gt=0, le=1, description="Salient pixels are those with s >= threshold.")
    catch: bool = Field(default=True, description="Also make one obvious 'catch' stimulus per image.")
    batch_size: int = Field(default=64, ge=1, le=4096)


class RankPaintingsParams(_Params):
    """A `rank_paintings` job: which of a study's unpainted training images people should paint next.

    A salience predictor (`sipat.predictor`) is trained on the study's mean human maps (images with at least
    `min_annotators` paintings); every other training image is scored by the predictor's MC-dropout spread and
    its disagreement with Grad-CAM of a reference classifier, and the `top` best are listed class by class in
    turn (`sipat.predictor.active`). Studies with `painting_pool: "active"` schedule the newest ranking's images
    (`backend.services.paint_next`); it also records the predictor's held-out quality (`worker/jobs/rank.py`).
    """

    study_id: int = Field(description="Study whose paintings train the predictor; its stimulus set's dataset.")
    min_annotators: int | None = Field(
        default=None, ge=1, description="Paintings an image needs to count as painted; null: the study's setting."
    )
    top: int = Field(default=50, ge=1, le=10_000, description="How many images the stored ranking lists.")
    image_size: int | None = Field(default=None, ge=8, le=1024, description="As for train jobs.")
    seed: int = Field(default=0, ge=0, description="Seeds the hold-out, predictor, MC-dropout and tie-breaks.")
    predictor_epochs: int = Field(default=20, ge=1, le=500)
    predictor_batch_size: int = Field(default=32, ge=1, le=4096)
    samples: int = Field(default=16, ge=2, le=256, description="MC-dropout passes per image.")
    weight: float = Field(
        default=0.5, ge=0, le=1, description="Share of the uncertainty's rank in the score (the rest: Grad-CAM)."
    )
    reference_model_id: int | None = Field(
        default=None, description="Model whose Grad-CAM is compared; null trains a quick standard model first."
    )
    reference_epochs: int = Field(default=1, ge=1, le=100)
    batch_size: int = Field(default=32, ge=1, le=4096, description="Batch size of that reference model.")
    lr: float = Field(default=0.1, gt=0, le=10, description="Learning rate of that reference model.")
    after_paintings: int | None = Field(
        default=None,
        ge=0,
        description="Set by the automatic refresh (the study's rerank_every): the study's accepted paintings when "
        "it was queued; null for a ranking asked for by hand.",
    )


PARAMS_BY_KIND: dict[str, type[_Params]] = {
    "train": TrainParams,
    "evaluate": EvaluateParams,
    "generate_stimuli": GenerateStimuliParams,
    "rank_paintings": RankPaintingsParams,
}


def validate_job_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """`params` of a job of `kind` checked and completed with defaults, as JSON; 422 (`InvalidInputError`)
    naming every bad field otherwise."""
    model = PARAMS_BY_KIND.get(kind)
    if model is None:
        raise InvalidInputError(f"unknown job kind {kind!r}; use one of {', '.join(PARAMS_BY_KIND)}")
    try:
        return model.model_validate(params).model_dump(mode="json")
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'params'}: {err['msg']}" for err in exc.errors()
        )
        raise InvalidInputError(f"invalid {kind} parameters: {problems}") from None
