"""The k-curve of issue 20: the Grad-CAM fill gives exactly the blanked images the reference model's Grad-CAM
(the others keep their human map, and the run says which got which), and the k-curve report finds the least k
whose clean gain reaches 95 % of painting every image, on constructed runs whose answer is known."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sipat.data.builtin import load_builtin
from sipat.experiment import ExperimentConfig, run_experiment
from sipat.experiment.arms import Variant
from sipat.experiment.config import RunSpec, run_settings
from sipat.experiment.kcurve import against_full, curve_point, kcurve, kcurve_table, paintings_needed
from sipat.experiment.maps import MapSet, unannotate, variant_maps
from sipat.experiment.runner import _SeedContext
from sipat.experiment.sources import filled_maps

TINY = dict(
    name="tiny-kcurve",
    dataset="premise",
    dataset_params={"n_train": 80, "n_test": 40, "clutter": 2},
    data_seed=0,
    arch="cnn32",
    epochs=1,
    steps=1,
    eps="8/255",
    lr=0.01,
    seeds=[0],
    methods=["pgd_at", "sip_at"],
    variants=["human", "human+unannotated=0.75+fill=gradcam", "human+unannotated=0.75"],
    reference_epochs=1,
    eval_eps=[0, "8/255"],
    eval_attacks=["pgd"],
    eval_pgd_steps=1,
    eval_masked=False,
    eval_limit=20,
    save_models=False,
)


pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_fill_variant_parses_names_and_refuses_what_it_cannot_do():
    v = Variant.parse("human+fill=gradcam+unannotated=0.9")
    assert (v.source, v.unannotated, v.fill, v.name) == ("human", 0.9, "gradcam", "human+unannotated=0.9+fill=gradcam")
    assert Variant.parse(v.name) == v and Variant.parse("human+unannotated=0.9").fill is None
    with pytest.raises(ValueError, match="fill must be one of gradcam"):
        Variant.parse("human+unannotated=0.5+fill=centre")
    with pytest.raises(ValueError, match="fill completes human maps"):
        Variant.parse("gradcam+fill=gradcam")
    cfg = ExperimentConfig.from_dict(TINY)
    settings = run_settings(cfg, RunSpec("sip_at", v, 0))
    assert settings["reference_epochs"] == 1  # a new reference budget makes a filled run stale
    assert "reference_epochs" not in run_settings(cfg, RunSpec("sip_at", Variant.parse("human"), 0))


def test_filled_maps_give_exactly_the_blanked_images_the_other_source():
    n = 40
    human = MapSet(torch.full((n, 1, 4, 4), 200, dtype=torch.uint8), torch.arange(n) % 5 != 0)  # 8 never painted
    other = MapSet(torch.full((n, 1, 4, 4), 7, dtype=torch.uint8), torch.ones(n, dtype=torch.bool))
    out = filled_maps(human, other, unannotated=0.5, seed=3, source="gradcam")
    kept = unannotate(human, 0.5, np.random.default_rng([3, 101]))  # what human+unannotated=0.5 blanks
    assert torch.equal(out.filled, ~kept.has) and bool(out.maps.has.all())
    assert bool((out.maps.values[kept.has] == 200).all()) and bool((out.maps.values[~kept.has] == 7).all())
    rec = out.record()
    assert (rec["human"], rec["gradcam"]) == (int(kept.has.sum()), int((~kept.has).sum())) == (16, 24)
    assert rec["gradcam_images"] == torch.nonzero(~kept.has).flatten().tolist()
    same = variant_maps(out.maps, Variant.parse("human+unannotated=0.5+fill=gradcam"), seed=3)
    assert torch.equal(same.values, out.maps.values) and torch.equal(same.has, out.maps.has)  # not blanked twice
    with pytest.raises(ValueError, match="do not match the human maps"):
        filled_maps(human, MapSet(other.values[:5], other.has[:5]), unannotated=0.5, seed=3, source="gradcam")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("kcurve")
    cfg = ExperimentConfig.from_dict(TINY)
    files = run_experiment(cfg, out, device="cpu", progress=False, log=lambda _m: None)
    runs = {p.stem: json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))}
    return cfg, out, files, runs


def test_a_filled_run_trains_on_grad_cam_exactly_where_the_human_map_was_blanked(tiny):
    cfg, out, files, runs = tiny
    rec = runs["sip_at__human+unannotated=0.75+fill=gradcam__seed0"]
    human = MapSet.from_float(load_builtin("premise", split="train", seed=0, **TINY["dataset_params"]).salience)
    blanked = ~unannotate(human, 0.75, np.random.default_rng([0, 101])).has
    src = rec["map_source"]
    assert (src["human"], src["gradcam"]) == (20, 60)
    assert src["gradcam_images"] == torch.nonzero(blanked).flatten().tolist()
    assert rec["annotated_share"] == 1.0 and runs["sip_at__human+unannotated=0.75__seed0"]["annotated_share"] == 0.25
    ctx = _SeedContext(cfg, 0, out, "cpu", lambda _m: None)  # the cached reference Grad-CAM of this run
    maps, cam = ctx.maps(Variant.parse(rec["variant"])), ctx.reference()["train"]
    assert torch.equal(maps.values[blanked], cam.values[blanked])
    assert torch.equal(maps.values[~blanked], human.values[~blanked])
    assert not torch.equal(cam.values[~blanked], human.values[~blanked])  # the two sources differ there
    assert files["kcurve"].is_file() and "| 25 | gradcam | random | 1 |" in files["kcurve"].read_text()


def _payload(method: str, variant: str, seed: int, clean: float, robust: float) -> dict:
    return {"method": method, "arm": method, "variant": variant, "seed": seed, "clean_acc": clean,
            "robust_acc": {"pgd": {"0": clean, "0.0313725": robust}}, "n_train": 1000}  # fmt: skip


def test_the_kcurve_finds_the_least_k_that_reaches_95_percent_of_the_gain(tmp_path):
    cfg = ExperimentConfig.from_dict({**TINY, "seeds": [0, 1]})
    runs = []
    for s in (0, 1):
        runs.append(_payload("pgd_at", "none", s, 0.50, 0.30))
        runs.append(_payload("sip_at", "human", s, 0.70, 0.30))  # painting everything: +0.20
        runs.append(_payload("sip_at", "human+unannotated=0.9", s, 0.55, 0.30))  # +0.05: not yet
        runs.append(_payload("sip_at", "human+unannotated=0.5", s, 0.69 + 0.002 * s, 0.30))  # +0.191: reaches
        runs.append(_payload("sip_at", "predicted+unannotated=0.9", s, 0.70, 0.20))  # gain, but robustness lost
        runs.append(_payload("sip_at", "predicted+unannotated=0.5", s, 0.70, 0.29))  # 0.29 >= 0.95 * 0.30
        runs.append(_payload("sip_at", "human+top=0.25", s, 0.99, 0.99))  # not a curve point
    assert curve_point("human+unannotated=0.75+fill=gradcam") == (25, "gradcam", "random")
    assert curve_point("human") == (100, "none", "random") and curve_point("human+top=0.25") is None
    table = kcurve_table(cfg, runs)
    assert set(table["points"][100, "predicted", "active"]) == {0, 1}  # k = 100 belongs to every fill and choice
    assert paintings_needed(table, "none")[0] == 50
    assert paintings_needed(table, "predicted")[0] == 50
    files = kcurve(cfg, runs, tmp_path)
    md = files["kcurve"].read_text()
    assert "- fill none, choice random: k = 50 % (500 images)" in md
    assert "| 50 | none | random | 2 | 0.6910 | 0.3000 | - | - | - | - | 0.690 0.692 |" in md
    assert md.count("| 100 | all | - | 2 |") == 1  # the k = 100 runs once, not per fill and choice
    flat = [_payload("pgd_at", "none", 0, 0.7, 0.3), _payload("sip_at", "human", 0, 0.69, 0.3),
            _payload("sip_at", "human+unannotated=0.5", 0, 0.7, 0.3)]  # fmt: skip
    assert paintings_needed(kcurve_table(cfg, flat), "none") == (
        None, "painting every image gives no clean gain over pgd_at (-0.0100)")  # fmt: skip


def test_each_k_is_compared_with_painting_every_image_paired_over_seeds(tmp_path):
    cfg = ExperimentConfig.from_dict({**TINY, "seeds": list(range(8))})
    noise = [0.01, -0.02, 0.03, 0.0, -0.01, 0.02, -0.03, 0.015]  # shared by every arm of a seed: pairing removes it
    runs = []
    for s, e in enumerate(noise):
        runs.append(_payload("pgd_at", "none", s, 0.50 + e, 0.30))
        runs.append(_payload("sip_at", "human", s, 0.70 + e, 0.30))
        runs.append(_payload("sip_at", "human+unannotated=0.9", s, 0.60 + e + 0.001 * s, 0.30))  # 10 points short
        runs.append(_payload("sip_at", "human+unannotated=0.5", s, 0.70 + e + (0.004 if s % 2 else -0.004), 0.30))
    table = kcurve_table(cfg, runs)
    short = against_full(table, (10, "none", "random"))
    assert short[0].startswith("-9.65 [") and "n=8" in short[0]
    p_t = float(short[0].split("t p=")[1].split(",")[0])
    assert p_t < 1e-6
    level = against_full(table, (50, "none", "random"))[0]
    assert level.startswith("+0.00 [") and float(level.split("t p=")[1].split(",")[0]) == 1.0
    assert short[1] == "+0.00 [+0.00, +0.00] (t p=1, W p=1, n=8)"  # robust equal in every seed
    md = kcurve(cfg, runs, tmp_path)["kcurve"].read_text()
    assert f"| 10 | none | random | {short[0]} |" in md
    assert against_full(kcurve_table(cfg, runs[:4]), (10, "none", "random"))[0].startswith("n/a (")  # one seed
