"""Experiments: every training method on one dataset, with salience variants, controls and several seeds.

    sipat experiment --config configs/mnist5k.json --out runs/mnist5k
    sipat experiment --config configs/shapes.json --out runs/shapes --seeds 0 1 2 3 4 --plan

What runs
---------
A *run* is (arm, salience variant, seed); an arm is a method with optional modifiers (`arms.Arm`:
``pgd_at@eps=0.5x`` trains at half the radius, ``trades@beta=1`` with TRADES beta 1). `standard`, `pgd_at` and
`trades` use no salience (variant ``none``); `sip_at`, `sip_trades` and the control `clean_mix` run once per
variant of the config (an entry ``"sip_trades@human"`` in ``methods`` runs with that variant only). Every run
of one seed starts from the same initial weights, sees the same data and has the same budget (epochs, eps,
steps, alpha, batch size, lr schedule; an arm's modifiers change only its own radius or beta).

Salience variants, written
``<source>[+top=<share>][+shuffled|+displaced|+random][+unannotated=<share>][+fill=gradcam][+choice=active]``
(`arms.Variant`; ``top`` binarises to a fixed share of pixels; ``displaced`` / ``random`` move each map off its
salient region / to random pixels at equal coverage, `sipat.controls`; source ``predicted`` fills the images
without a human map with a salience predictor's maps, and ``human+...+fill=gradcam`` with the reference model's
Grad-CAM, `sources`; ``choice=active`` picks the images that keep their map as an active painting pool would,
`choice`; the k-curve over the annotated share is `kcurve`, with the trained maps' quality from `quality`; the
``annotators`` setting makes the human maps simulated paintings of the exact masks):

- ``human``: the dataset's own maps (mnist5k strokes, shapes object masks, CUB-200 segmentations).
- ``gradcam``: Grad-CAM (`sipat.salience.gradcam` at `sipat.models.gradcam_layer`, target = the label) of a
  reference model trained with ``standard`` for ``reference_epochs`` on the same training data; computed once
  per seed and cached under ``salience/``.
- ``+unannotated=u``: the maps of a seeded random round(u * n) of the n annotated training images are
  replaced by NaN (no map: SIP-AT perturbs those images everywhere).
- ``+shuffled`` (control: does *where* matter?): after the blanking above, the maps are permuted among the
  annotated images by a seeded random cyclic permutation (Sattolo's algorithm), so every annotated image gets
  another image's map: the same multiset of maps, hence of coverage, in the wrong place.

``clean_mix`` (control: does the mask matter, or only perturbing less?) is PGD-AT in which an expected share p
of every batch is trained on clean inputs (`sipat.training.TrainConfig.clean_share`: per batch of B images,
floor(p * B + u) of them, u ~ U(0, 1), chosen at random, stay unperturbed). p is the share of the perturbation
budget that sip_at with the same variant leaves unused:

    p = mean over training images i of  mean over pixels of (1 - to_mask(s_i))      (0 for an image without map)

i.e. the mean salient pixel coverage. So clean_mix and sip_at keep the same expected share of (image, pixel)
pairs clean: sip_at the annotator's pixels of every image, clean_mix all pixels of random images. A shuffled
variant has the p of its unshuffled one, so clean_mix skips shuffled variants.

Evaluation on the test split (``eval_limit``: a seeded random subset, the same for every run of a seed): clean
accuracy and robust accuracy under PGD (``eval_pgd_steps``, step 2.5 * eps / steps, random start) and APGD-CE
(``eval_apgd_steps``) at every eps of ``eval_eps``; unmasked (the adversary every method faces) and, with
``eval_masked``, also masked (only the non-salient pixels attacked; test maps: the dataset's own, or for a
dataset without maps the reference model's Grad-CAM of the test images).

Output under ``out/``: ``config.json``; ``runs/<run>.json`` per finished run (written atomically as it
finishes: results, settings, history, seconds); ``checkpoints/<run>.pt`` while a run trains (an interrupted
run resumes after its last finished epoch; one made with other settings is refused); ``models/<run>.pt``
(``save_models``); ``salience/`` (reference Grad-CAM maps); ``results.md`` and ``results.csv`` (mean and sample
standard deviation over seeds per method and variant), ``runs.csv`` (one row per run) and ``accuracy_vs_eps.png``
/ ``.svg``. A re-run skips every run whose JSON exists with the same settings and refuses, naming the
differences, one made with other settings.

The decision report (`decide`): with PGD-AT at >= 2 radii, each arm's margin over the PGD-AT frontier; with
TRADES at >= 2 betas (``standard`` counts as beta 0), each SIP-TRADES arm's margin over the TRADES frontier;
and each masked arm's paired comparison with its controls on its own frontier (`sipat.paired`), in
``decision.md``, ``decision_seeds.csv``, ``frontier.png``.

Modules: `config` (settings, the plan), `arms` (arms and variants), `maps` (salience maps and their variants),
`sources` (the predicted source), `decide` (the decision report), `datasets` (the
config's data and views of it), `runner` (training and evaluating the runs), `store` (finished runs on disk) and
`report` (tables and plot). The command line is `sipat.cli.experiment`.
"""

from sipat.data import SubsetOf
from sipat.experiment.arms import (
    ATTACKED_METHODS,
    CONTROLS,
    NO_SALIENCE,
    SOURCES,
    TRADES_METHODS,
    Arm,
    Variant,
    parse_number,
)
from sipat.experiment.config import (
    _RESULT_FIELDS,
    CONTROL_METHODS,
    EXPERIMENT_METHODS,
    EXTERNAL_DATASETS,
    PER_RUN_FIELDS,
    SALIENCE_METHODS,
    TRAIN_FIELDS,
    ExperimentConfig,
    RunSpec,
    plan_items,
    plan_runs,
    run_settings,
)
from sipat.experiment.datasets import WithSalience, load_data, subset
from sipat.experiment.decide import decide, robust_eps, robust_value
from sipat.experiment.maps import (
    MapSet,
    control_maps,
    cyclic_permutation,
    dataset_maps,
    shuffle_maps,
    unannotate,
    variant_maps,
)
from sipat.experiment.report import (
    _diverged_note,
    _fmt,
    _key,
    _markdown,
    _metric_columns,
    _plot,
    report_only,
    summarise,
    write_report,
)
from sipat.experiment.runner import _execute, _SeedContext, run_experiment
from sipat.experiment.sources import PredictedMaps, predicted_maps
from sipat.experiment.store import _diff, _read_json, _value, arm_name, finished_runs, run_path
from sipat.vocabulary import EVAL_ATTACKS, eps_label, in_255ths

__all__ = [
    "ATTACKED_METHODS",
    "CONTROLS",
    "CONTROL_METHODS",
    "EVAL_ATTACKS",
    "EXPERIMENT_METHODS",
    "EXTERNAL_DATASETS",
    "NO_SALIENCE",
    "PER_RUN_FIELDS",
    "SALIENCE_METHODS",
    "SOURCES",
    "TRADES_METHODS",
    "TRAIN_FIELDS",
    "_RESULT_FIELDS",
    "Arm",
    "ExperimentConfig",
    "MapSet",
    "PredictedMaps",
    "RunSpec",
    "SubsetOf",
    "Variant",
    "WithSalience",
    "_SeedContext",
    "_diff",
    "_diverged_note",
    "_execute",
    "_fmt",
    "_key",
    "_markdown",
    "_metric_columns",
    "_plot",
    "_read_json",
    "_value",
    "arm_name",
    "control_maps",
    "cyclic_permutation",
    "dataset_maps",
    "decide",
    "eps_label",
    "finished_runs",
    "in_255ths",
    "load_data",
    "parse_number",
    "plan_items",
    "plan_runs",
    "predicted_maps",
    "report_only",
    "robust_eps",
    "robust_value",
    "run_experiment",
    "run_path",
    "run_settings",
    "shuffle_maps",
    "subset",
    "summarise",
    "unannotate",
    "variant_maps",
    "write_report",
]
