"""The k-curve with simulated annotators and active choice (issue 20): the ``annotators`` key changes the training
maps and not the test maps, deterministically; ``choice=active`` parses, round-trips and is refused where it means
nothing; the active kept set has the budget's size, is seeded, class-balanced in its picks, differs from the random
one and is shared by the none / gradcam / predicted fills; the map quality is right on a hand-made case and the
k-curve table keeps random and active apart."""

from __future__ import annotations

import json
import math

import pytest
import torch

from sipat.experiment import ExperimentConfig, run_experiment
from sipat.experiment.arms import Variant
from sipat.experiment.choice import active_kept, budget, random_kept
from sipat.experiment.config import RunSpec, run_settings
from sipat.experiment.kcurve import kcurve, kcurve_table, paintings_needed
from sipat.experiment.maps import MapSet
from sipat.experiment.quality import map_quality
from sipat.experiment.runner import _SeedContext

SIM = dict(
    name="tiny-kcurve-sim",
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
    variants=["human", "human+unannotated=0.5+choice=active", "human+unannotated=0.5"],
    reference_epochs=1,
    eval_eps=[0, "8/255"],
    eval_attacks=["pgd"],
    eval_pgd_steps=1,
    eval_masked=False,
    eval_limit=20,
    save_models=False,
    predictor={"epochs": 1, "width": 4},
    annotators={"count": 3, "seed": 0},
)
FILLS = ("human+unannotated=0.5+choice=active", "human+unannotated=0.5+fill=gradcam+choice=active",
         "predicted+unannotated=0.5+choice=active")  # fmt: skip

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_annotators_key_is_checked_round_trips_and_decides_the_salience_runs():
    cfg = ExperimentConfig.from_dict(SIM)
    assert cfg.annotators == {"count": 3, "seed": 0} and cfg.active_rounds == 1
    again = ExperimentConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and ExperimentConfig.from_dict({**SIM, "annotators": {"count": 2}}).annotators == {
        "count": 2, "seed": 0}  # fmt: skip
    assert ExperimentConfig.from_dict({**SIM, "annotators": None}).annotators is None  # absent: exact masks
    with pytest.raises(ValueError, match="mnist5k does not have"):
        ExperimentConfig.from_dict({**SIM, "dataset": "mnist5k", "dataset_params": {}})
    for bad, match in (({"count": 0}, "count must be an integer >= 1"), ({"count": "3"}, "count must be"),
                       ({"people": 3}, "unknown annotators settings"), (3, "must be a mapping")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            ExperimentConfig.from_dict({**SIM, "annotators": bad})
    with pytest.raises(ValueError, match="active_rounds must be an integer >= 1"):
        ExperimentConfig.from_dict({**SIM, "active_rounds": 0})
    human = run_settings(cfg, RunSpec("sip_at", Variant.parse("human"), 0))
    assert human["annotators"] == {"count": 3, "seed": 0}  # other paintings make a finished run stale
    assert "annotators" not in run_settings(cfg, RunSpec("pgd_at", Variant(), 0))
    active = run_settings(cfg, RunSpec("sip_at", Variant.parse(FILLS[0]), 0))
    assert active["active_rounds"] == 1 and active["predictor"] == SIM["predictor"]
    assert active["reference_epochs"] == 1  # the picks use the reference model's Grad-CAM


def test_choice_parses_round_trips_keeps_old_names_and_is_refused_where_meaningless():
    for text in FILLS:
        v = Variant.parse(text)
        assert v.choice == "active" and v.name == text and Variant.parse(v.name) == v
    assert Variant.parse("human+choice=random+unannotated=0.9").name == "human+unannotated=0.9"
    assert Variant.parse("human+unannotated=0.9+choice=active") != Variant.parse("human+unannotated=0.9")
    for text in ("human+choice=active", "human+unannotated=1+choice=active", "gradcam+unannotated=0.5+choice=active"):
        with pytest.raises(ValueError, match="choice picks which painted images keep"):
            Variant.parse(text)
    with pytest.raises(ValueError, match="choice must be one of random, active"):
        Variant.parse("human+unannotated=0.5+choice=smart")


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    cfg = ExperimentConfig.from_dict(SIM)
    return _SeedContext(cfg, 0, tmp_path_factory.mktemp("sim"), "cpu", lambda _m: None)


def test_simulated_annotators_change_the_training_maps_not_the_test_maps_and_are_seeded(ctx, tmp_path):
    truth, human = ctx.truth(), ctx.human()
    assert bool(human.has.all()) and not torch.equal(human.values, truth.values)
    assert set(torch.unique(truth.values).tolist()) == {0, 255}  # premise: exact masks
    assert len(set(torch.unique(human.values).tolist())) > 2  # a mean of 3 paintings: soft
    same = _SeedContext(ctx.cfg, 0, tmp_path, "cpu", lambda _m: None)
    assert torch.equal(same.human().values, human.values)
    other = ctx.cfg.replace(annotators={"count": 3, "seed": 1})
    assert not torch.equal(_SeedContext(other, 0, tmp_path, "cpu", lambda _m: None).human().values, human.values)
    assert torch.equal(ctx.maps(Variant.parse("human")).values, human.values)  # what SIP-AT trains with
    exact = _SeedContext(ExperimentConfig.from_dict({**SIM, "annotators": None}), 0, tmp_path, "cpu", print)
    assert torch.equal(exact.human().values, truth.values)  # absent: the exact masks as before
    assert ctx.masked_test() is ctx.test  # the test set keeps its own exact masks
    assert set(torch.unique(ctx.test.salience).tolist()) == {0.0, 1.0}


def test_the_active_kept_set_has_the_budget_is_seeded_balanced_and_not_random(ctx):
    images, labels = ctx.train.images.float(), ctx.train.labels
    human, cam = ctx.human(), ctx.reference()["train"]

    def pick(seed: int):
        return active_kept(images, labels, human, cam, unannotated=0.5, seed=seed, settings=SIM["predictor"])

    a = pick(0)
    assert int(a.maps.has.sum()) == budget(human, 0.5) == 40 and int(a.picked.sum()) == 20
    assert not bool((a.picked & ~a.maps.has).any())  # the picks are among the kept
    b = pick(0)
    assert torch.equal(a.maps.has, b.maps.has) and torch.equal(a.picked, b.picked)
    # the picks even out the classes of the whole kept set (the random first half included)
    counts = torch.bincount(labels[a.maps.has], minlength=4)
    assert int(counts.max() - counts.min()) <= 1, counts
    assert not torch.equal(a.maps.has, random_kept(human, 0.5, 0).maps.has)
    assert not torch.equal(a.maps.has, pick(1).maps.has)
    two = active_kept(images, labels, human, cam, unannotated=0.5, seed=0, settings=SIM["predictor"], rounds=2)
    assert int(two.maps.has.sum()) == 40 and int(two.picked.sum()) == 20
    rec = a.record()
    assert rec["choice"] == "active" and rec["kept"] == 40
    assert rec["picked_images"] == torch.nonzero(a.picked).flatten().tolist()


def test_the_three_fills_share_one_active_kept_set(ctx):
    kept = ctx.kept(0.5, "active").maps.has
    none, gradcam, predicted = (Variant.parse(t) for t in FILLS)
    assert torch.equal(ctx.maps(none).has, kept)
    filled = ctx.filled("gradcam", 0.5, "active")
    assert torch.equal(filled.filled, ~kept) and bool(ctx.maps(gradcam).has.all())
    assert torch.equal(ctx.predicted(0.5, "active").predicted, ~kept)
    human = ctx.human()
    for v in (gradcam, predicted):  # the kept images train with their (simulated) human map in every fill
        assert torch.equal(ctx.maps(v).values[kept], human.values[kept])
    assert not torch.equal(kept, ctx.kept(0.5, "random").maps.has)
    q = ctx.quality(none)
    assert q is not None and q["filled"]["n"] == 40 and q["filled"]["cc"] == 0.0 and q["filled"]["iou"] == 0.0
    assert 0 < q["kept"]["iou"] < 1  # simulated paintings are not the exact masks


def test_map_quality_on_a_hand_made_case():
    truth = torch.zeros(3, 1, 4, 4)
    truth[0, :, :2], truth[1, :, :2], truth[2, :, :, :2] = 1, 1, 1
    trained = truth.clone()
    trained[1] = float("nan")  # blanked, no fill: counts as all zero
    trained[2] = 0
    trained[2, :, :, :3] = 1  # 12 pixels over the true 8: IoU 8 / 12, CC 1 / sqrt(3)
    kept = torch.tensor([True, False, False])
    q = map_quality(MapSet.from_float(trained), kept, MapSet.from_float(truth))
    assert (q["filled"]["n"], q["kept"]["n"]) == (2, 1)
    assert q["filled"]["iou"] == pytest.approx((0 + 8 / 12) / 2)
    assert q["filled"]["cc"] == pytest.approx((0 + 1 / math.sqrt(3)) / 2)
    assert q["kept"]["cc"] == pytest.approx(1.0) and q["kept"]["iou"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="kept flags"):
        map_quality(MapSet.from_float(trained), kept[:2], MapSet.from_float(truth))


def _payload(variant: str, seed: int, clean: float, quality: dict | None = None, method: str = "sip_at") -> dict:
    return {"method": method, "arm": method, "variant": variant, "seed": seed, "clean_acc": clean,
            "robust_acc": {"pgd": {"0": clean, "0.0313725": 0.3}}, "n_train": 1000, "map_quality": quality}  # fmt: skip


def test_the_kcurve_table_keeps_random_and_active_apart(tmp_path):
    cfg = ExperimentConfig.from_dict(SIM)
    q = {"filled": {"n": 900, "cc": 0.25, "iou": 0.5}, "kept": {"n": 100, "cc": 0.75, "iou": 0.625}}
    runs = [_payload("none", 0, 0.5, method="pgd_at"), _payload("human", 0, 0.7),
            _payload("human+unannotated=0.9", 0, 0.55, q), _payload("human+unannotated=0.5", 0, 0.7, q),
            _payload("human+unannotated=0.9+choice=active", 0, 0.7, q)]  # fmt: skip
    table = kcurve_table(cfg, runs)
    assert table["points"][10, "none", "random"][0][0] == 0.55 and table["points"][10, "none", "active"][0][0] == 0.7
    assert paintings_needed(table, "none", "random")[0] == 50 and paintings_needed(table, "none", "active")[0] == 10
    md = kcurve(cfg, runs, tmp_path)["kcurve"].read_text()
    assert "| 10 | none | active | 1 | 0.7000 | 0.3000 | 0.250 | 0.500 | 0.750 | 0.625 | 0.700 | 0.300 |" in md
    assert "| 10 | none | random | 1 | 0.5500 |" in md
    assert "- fill none, choice random: k = 50 % (500 images)" in md
    assert "- fill none, choice active: k = 10 % (100 images)" in md
    rows = (tmp_path / "kcurve.csv").read_text().splitlines()
    assert rows[0].startswith("k_percent,fill,choice,seed,clean_acc,") and rows[0].endswith("kept_cc,kept_iou")
    assert "10,none,active,0,0.7,0.3,0.25,0.5,0.75,0.625" in rows


def test_an_active_run_records_its_kept_images_and_map_quality(tmp_path):
    cfg = ExperimentConfig.from_dict({**SIM, "methods": ["pgd_at", "sip_at"]})
    run_experiment(cfg, tmp_path, device="cpu", progress=False, log=lambda _m: None)
    rec = json.loads((tmp_path / "runs" / "sip_at__human+unannotated=0.5+choice=active__seed0.json").read_text())
    assert rec["kept_maps"]["choice"] == "active" and rec["kept_maps"]["kept"] == 40
    assert len(rec["kept_maps"]["picked_images"]) == 20 and rec["annotated_share"] == 0.5
    assert rec["map_quality"]["filled"]["n"] == 40 and rec["settings"]["annotators"] == SIM["annotators"]
    md = (tmp_path / "kcurve.md").read_text()
    assert "| 50 | none | active | 1 |" in md and "| 50 | none | random | 1 |" in md
