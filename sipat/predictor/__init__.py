"""A salience model learned from the paintings, and annotation effort spent where it counts (issue 20).

- `model`: `SaliencyNet`, a light encoder-decoder; `predict_maps`; `mc_dropout` (mean and spread).
- `train`: `train_predictor` on (image, mean human map) pairs, masked to the annotated images.
- `metrics`: CC, SIM, KL, NSS, AUC (Judd, exact), IoU at the mask threshold; centre-prior and uniform baselines.
- `annotators`: simulated people painting the exact masks of `shapes`.
- `active`: which unpainted images to paint next (MC-dropout spread + Grad-CAM disagreement, class-balanced).
- `fill`: the `predicted` source: human maps where present, predicted elsewhere, with the source per image.

See docs/salience-model.md.
"""

from sipat.predictor.active import (
    acquisition_scores,
    acquisition_signals,
    select_active,
    select_balanced,
    select_random,
)
from sipat.predictor.annotators import AnnotatorProfile, human_mean, simulate_annotators
from sipat.predictor.fill import FilledMaps, fill_maps, fill_with_predictor, uses_human
from sipat.predictor.metrics import centre_prior, compare, evaluate_maps, uniform_map
from sipat.predictor.model import SaliencyNet, mc_dropout, predict_maps
from sipat.predictor.train import PredictorConfig, PredictorResult, load_predictor, train_predictor

__all__ = [
    "AnnotatorProfile",
    "FilledMaps",
    "PredictorConfig",
    "PredictorResult",
    "SaliencyNet",
    "acquisition_scores",
    "acquisition_signals",
    "centre_prior",
    "compare",
    "evaluate_maps",
    "fill_maps",
    "fill_with_predictor",
    "human_mean",
    "load_predictor",
    "mc_dropout",
    "predict_maps",
    "select_active",
    "select_balanced",
    "select_random",
    "simulate_annotators",
    "train_predictor",
    "uniform_map",
    "uses_human",
]
