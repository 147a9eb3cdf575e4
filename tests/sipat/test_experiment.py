"""`sipat experiment`: a tiny real experiment end to end, resume, the salience variants and controls."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sipat.checkpoints import save_checkpoint
from sipat.cli import main
from sipat.data import load_builtin
from sipat.experiment import (
    TRAIN_FIELDS,
    ExperimentConfig,
    MapSet,
    Variant,
    WithSalience,
    _SeedContext,
    dataset_maps,
    plan_runs,
    run_experiment,
    subset,
    variant_maps,
)
from sipat.experiment.config import run_settings
from sipat.experiment.store import checkpoint_path, finished_runs
from sipat.models import build_model
from sipat.salience import to_mask
from sipat.training import RECIPE, TrainConfig, batch_loss, clean_rows

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

TINY = dict(
    name="tiny",
    dataset="mnist5k",
    train_limit=200,
    epochs=1,
    steps=2,
    eps=0.2,
    lr=0.05,
    seeds=[0, 1],
    methods=["pgd_at", "sip_at", "clean_mix"],
    variants=["human"],
    eval_eps=[0, 0.1],
    eval_attacks=["pgd", "apgd"],
    eval_pgd_steps=2,
    eval_apgd_steps=3,
    eval_limit=60,
    save_models=False,
)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("experiment")
    cfg = ExperimentConfig.from_dict(TINY)
    files = run_experiment(cfg, out, device="cpu", progress=False, log=lambda _m: None)
    return cfg, out, files


def _runs(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))}


def test_tiny_experiment_writes_markdown_csv_and_plot_with_mean_and_std(tiny):
    cfg, out, files = tiny
    runs = _runs(out)
    assert sorted(runs) == sorted(r.run_id for r in plan_runs(cfg)) and len(runs) == 6
    for r in runs.values():
        assert 0 <= r["robust_acc"]["pgd"]["0.1"] <= r["clean_acc"] == r["robust_acc"]["apgd"]["0"]
        assert set(r["robust_acc_masked"]) == {"pgd", "apgd"}
    with open(files["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["method"], r["variant"]) for r in rows] == [
        ("pgd_at", "none"),
        ("sip_at", "human"),
        ("clean_mix", "human"),
    ]
    for col in ("clean_acc", "pgd_eps=0.1", "apgd_eps=0.1", "pgd_masked_eps=0.1", "apgd_masked_eps=0.1"):
        assert f"{col}_mean" in rows[0] and f"{col}_std" in rows[0]
    sip = [runs[f"sip_at__human__seed{s}"]["clean_acc"] for s in (0, 1)]
    row = rows[1]
    assert row["n_seeds"] == "2" and float(row["clean_acc_mean"]) == pytest.approx(np.mean(sip), abs=1e-6)
    assert float(row["clean_acc_std"]) == pytest.approx(np.std(sip, ddof=1), abs=1e-6)
    md = files["markdown"].read_text()
    assert "| sip_at | human | 2 |" in md and "±" in md and "masked: only non-salient pixels attacked" in md
    assert files["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and files["png"].stat().st_size > 10_000
    assert files["svg"].read_text().lstrip().startswith("<?xml") and "<svg" in files["svg"].read_text()
    assert not any((out / "checkpoints").glob("*.pt"))  # resume checkpoints are removed once a run is done


def test_clean_mix_trains_the_salient_coverage_share_clean(tiny):
    _, out, _ = tiny
    runs = _runs(out)
    for s in (0, 1):
        sip, mix = runs[f"sip_at__human__seed{s}"], runs[f"clean_mix__human__seed{s}"]
        assert 0.2 < sip["salient_share"] < 0.45  # mnist5k strokes cover about a third
        assert mix["clean_share"] == sip["salient_share"] == mix["train_config"]["clean_share"]
        assert mix["train_config"]["method"] == "pgd_at"
        data = subset(load_builtin("mnist5k", split="train", seed=s), 200, s)
        p = float((1 - to_mask(data.salience)).mean())  # the definition: mean salient pixel coverage
        assert mix["clean_share"] == pytest.approx(p, abs=1e-6)


def test_a_rerun_skips_finished_runs_and_redoes_only_a_missing_one(tiny, tmp_path):
    cfg, out, _ = tiny
    before = _runs(out)
    (out / "runs" / "pgd_at__none__seed1.json").unlink()  # as if interrupted before this run finished
    messages: list[str] = []
    run_experiment(cfg, out, device="cpu", progress=False, log=messages.append)
    after = _runs(out)
    assert messages[0].startswith("5 of 6 runs already finished")
    redone = [k for k in after if after[k]["finished"] != before[k]["finished"] or k == "pgd_at__none__seed1"]
    assert redone == ["pgd_at__none__seed1"]
    assert after["pgd_at__none__seed1"]["clean_acc"] == before["pgd_at__none__seed1"]["clean_acc"]  # seeded


def test_a_rerun_with_other_settings_is_refused_naming_them(tiny):
    cfg, out, _ = tiny
    with pytest.raises(ValueError, match=r"other settings \(they differ in epochs\)"):
        run_experiment(cfg.replace(epochs=2), out, device="cpu", progress=False, log=lambda _m: None)


def test_a_half_trained_run_made_on_other_maps_is_refused_before_anything_trains(tmp_path):
    """The training config cannot tell (the maps are not in it): the run's settings stored in its checkpoint can."""
    cfg = ExperimentConfig.from_dict(TINY)
    runs = plan_runs(cfg)
    run = next(r for r in runs if r.method == "sip_at")
    ckpt = checkpoint_path(tmp_path, run)
    other = {**run_settings(cfg, run), "annotators": {"count": 3, "seed": 0}}
    model = build_model("small_cnn", num_classes=10, in_channels=1)
    save_checkpoint(ckpt, model, TrainConfig(), meta={"settings": other}, resume={"epoch": 1})
    with pytest.raises(ValueError, match=r"half-trained run made with other settings \(they differ in annotators\)"):
        finished_runs(cfg, tmp_path, runs)
    save_checkpoint(ckpt, model, TrainConfig(), meta={"settings": run_settings(cfg, run)}, resume={"epoch": 1})
    assert finished_runs(cfg, tmp_path, runs) == {}  # the same settings: it resumes
    save_checkpoint(ckpt, model, TrainConfig(), meta={}, resume={"epoch": 1})
    assert finished_runs(cfg, tmp_path, runs) == {}  # written before checkpoints held settings: resumes as before


def test_a_training_run_stores_its_settings_in_its_checkpoint(tmp_path, monkeypatch):
    import sipat.experiment.runner as runner

    def train_then_die(*args, **kwargs):
        runner_train(*args, **kwargs)
        raise KeyboardInterrupt  # killed after the last epoch's checkpoint, before the run's JSON

    runner_train = runner.train
    monkeypatch.setattr(runner, "train", train_then_die)
    cfg = ExperimentConfig.from_dict({**TINY, "seeds": [0], "methods": ["sip_at"], "epochs": 1})
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, tmp_path, device="cpu", progress=False, log=lambda _m: None)
    run = plan_runs(cfg)[0]
    stored = torch.load(checkpoint_path(tmp_path, run), weights_only=True)["meta"]["settings"]
    assert stored == run_settings(cfg, run)


def _human_maps(n: int = 300) -> MapSet:
    return dataset_maps(subset(load_builtin("mnist5k", split="train", seed=0), n, 0))


def test_shuffled_maps_keep_the_coverage_multiset_but_move_every_map():
    base = _human_maps()
    v = Variant.parse("human+shuffled")
    shuffled = variant_maps(base, v, seed=3)
    assert torch.equal(shuffled.has, base.has)
    cov, cov_s = base.coverage(), shuffled.coverage()
    assert torch.equal(cov.sort().values, cov_s.sort().values)  # same multiset of coverage ...
    assert not torch.equal(cov, cov_s)
    same_place = (shuffled.values == base.values).flatten(1).all(1)
    assert not same_place.any()  # ... and no digit keeps its own strokes
    assert torch.equal(variant_maps(base, v, seed=3).values, shuffled.values)  # seeded
    assert not torch.equal(variant_maps(base, v, seed=4).values, shuffled.values)


def test_half_unannotated_blanks_exactly_half_seeded_and_those_are_perturbed_everywhere():
    base = _human_maps(301)
    v = Variant.parse("human+unannotated=0.5")
    maps = variant_maps(base, v, seed=0)
    assert int((~maps.has).sum()) == round(0.5 * 301)
    assert torch.equal(variant_maps(base, v, seed=0).has, maps.has)
    assert not torch.equal(variant_maps(base, v, seed=1).has, maps.has)
    ds = WithSalience(subset(load_builtin("mnist5k", split="train", seed=0), 301, 0), maps)
    blank = int(torch.nonzero(~maps.has)[0])
    kept = int(torch.nonzero(maps.has)[0])
    assert torch.isnan(ds[blank][2]).all() and to_mask(ds[blank][2][None]).eq(1).all()
    assert torch.equal(ds[kept][2], base.get(kept)) and to_mask(ds[kept][2][None]).eq(0).any()
    combined = variant_maps(base, Variant.parse("human+unannotated=0.5+shuffled"), seed=0)
    assert torch.equal(combined.has, maps.has)  # shuffling moves maps among the annotated images only


def test_clean_rows_keep_the_stated_share_clean_and_the_rest_adversarial():
    gen = torch.Generator().manual_seed(0)
    ks = [int(clean_rows(32, 0.3, gen).sum()) for _ in range(2000)]
    assert set(ks) == {9, 10} and np.mean(ks) / 32 == pytest.approx(0.3, abs=0.01)  # E[k] = 0.3 * 32 = 9.6

    torch.manual_seed(0)
    model = build_model("small_cnn", num_classes=10, in_channels=1)  # no BatchNorm: rows are independent
    data = load_builtin("mnist5k", split="train", seed=0)
    x, y, s = data.images[:32], data.labels[:32], data.salience[:32]
    cfg = TrainConfig(method="pgd_at", eps=0.3, alpha=0.1, steps=3, clean_share=0.3)
    clean = clean_rows(32, 0.3, torch.Generator().manual_seed(7))  # batch_loss draws the same rows first
    _, logits = batch_loss(model, x, y, s, cfg, torch.Generator().manual_seed(7))
    with torch.no_grad():
        ref = model(x)
    assert torch.allclose(logits[clean], ref[clean], atol=1e-5)
    assert not torch.isclose(logits[~clean], ref[~clean], atol=1e-3).all(dim=1).any()
    with pytest.raises(ValueError, match="pgd_at and sip_at only"):
        TrainConfig(method="trades", clean_share=0.3)


def test_gradcam_maps_are_computed_once_per_seed_and_cached(tmp_path):
    cfg = ExperimentConfig.from_dict({**TINY, "variants": ["gradcam"], "reference_epochs": 1})
    logs: list[str] = []
    ctx = _SeedContext(cfg, 0, tmp_path, "cpu", logs.append)
    maps = ctx.maps(Variant.parse("gradcam"))
    assert len(maps) == 200 and bool(maps.has.all()) and maps.values.shape == (200, 1, 28, 28)
    assert 0 < float(maps.coverage().mean()) < 1 and len(logs) == 1
    again = _SeedContext(cfg, 0, tmp_path, "cpu", logs.append).maps(Variant.parse("gradcam"))
    assert torch.equal(again.values, maps.values) and len(logs) == 1  # read from salience/, not retrained


# ----------------------------------------------------------------------------------------------------------
# configs and the command line


@pytest.mark.parametrize("name", ["mnist5k", "shapes", "cifar10", "cifar100", "cub200"])
def test_shipped_configs_parse_and_plan_at_least_three_seeds(name):
    cfg = ExperimentConfig.from_file(CONFIGS / f"{name}.json")
    runs = plan_runs(cfg)
    assert len(cfg.seeds) >= 3 and cfg.dataset == name
    methods = {r.method for r in runs}
    assert {"standard", "pgd_at", "trades", "sip_at", "sip_trades"} <= methods


@pytest.mark.parametrize(
    ("name", "ramp", "warmup"),
    [("shapes", 10, 5), ("shapes-cpu", 5, 3), ("mnist5k", 3, 2)],
)
def test_the_cpu_configs_write_the_whole_recipe_and_train_most_epochs_at_full_eps(name, ramp, warmup):
    written = json.loads((CONFIGS / f"{name}.json").read_text())
    assert set(RECIPE) <= set(written)  # every knob explicit: TrainConfig's defaults have the recipe off
    t = ExperimentConfig.from_file(CONFIGS / f"{name}.json").train
    assert (t.eps_ramp_epochs, t.warmup_epochs, t.grad_clip, t.weight_decay) == (ramp, warmup, 10.0, 5e-4)
    # no flips: they mirror digits (mnist5k) and swap the 45 and 135 degree textures of shapes' classes 1 and 3;
    # no crop either: on shapes the crop alone kept PGD-AT at chance for 6 epochs (docs/results.md)
    assert t.augment is False and t.flip is False and t.crop_padding == 4
    # the ramp ends early (a third of the run; 3 of 8 epochs on mnist5k): most epochs train at the tables' eps
    assert t.eps_ramp_problem() is None and t.epochs - t.eps_ramp_epochs >= 0.6 * t.epochs


def test_an_eps_ramp_longer_than_the_run_is_refused_where_a_method_needs_the_radius():
    with pytest.raises(ValueError, match=r"eps_ramp_epochs \(9\) >= epochs \(8\).*never reaches eps"):
        ExperimentConfig(dataset="shapes", epochs=8, eps_ramp_epochs=9, methods=["standard", "pgd_at"])
    with pytest.raises(ValueError, match=r"eps_ramp_epochs \(10\) >= epochs \(8\).*never reaches eps"):
        ExperimentConfig.from_dict({"dataset": "shapes", "epochs": 8, "eps_ramp_epochs": 10, "methods": ["trades"]})
    # as long as the run: eps in the last batch, which `train` warns about (a tiny test run may want that)
    assert ExperimentConfig(dataset="shapes", epochs=1, eps_ramp_epochs=1, methods=["pgd_at"]).epochs == 1
    # standard training has no radius to reach (nor has eps 0): a ramp is no problem there
    assert ExperimentConfig(dataset="shapes", epochs=2, eps_ramp_epochs=8, methods=["standard"]).epochs == 2
    assert ExperimentConfig(dataset="shapes", epochs=2, eps_ramp_epochs=8, eps=0, methods=["pgd_at"]).eps == 0


def test_config_values_accept_fractions_and_refuse_unknown_keys(tmp_path):
    cfg = ExperimentConfig.from_dict({"dataset": "shapes", "eps": "8/255", "eval_eps": ["0", "4/255", "8/255"]})
    assert cfg.eps == pytest.approx(8 / 255) and cfg.eval_eps[-1] == pytest.approx(8 / 255)
    with pytest.raises(ValueError, match="unknown experiment settings"):
        ExperimentConfig.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match="source must be one of"):
        ExperimentConfig.from_dict({"variants": ["humans"]})


def test_training_defaults_are_trainconfigs_except_the_budget():
    shared = {f.name for f in dataclasses.fields(TrainConfig)} & set(TRAIN_FIELDS)
    cfg, train = ExperimentConfig(), TrainConfig()
    assert {"lr", "eps", "threshold", "amp", "num_workers"} <= shared
    assert {n for n in shared if getattr(cfg, n) != getattr(train, n)} == {"epochs", "steps", "alpha"}


def test_cli_plan_lists_the_runs(tmp_path, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({**TINY, "methods": ["standard", "sip_at"], "variants": ["human", "human+shuffled"]}))
    assert (
        main(["experiment", "--config", str(cfg), "--seeds", "0", "1", "2", "--out", str(tmp_path / "o"), "--plan"])
        == 0
    )
    out = capsys.readouterr().out
    assert "todo  sip_at__human+shuffled__seed2" in out and "9 runs (0 finished)" in out
    assert main(["experiment", "--config", str(tmp_path / "none.json"), "--plan"]) == 2


def test_a_diverged_run_is_kept_counted_apart_and_left_out_of_the_means(tmp_path, monkeypatch):
    """One run whose loss became NaN must not stop the experiment nor pull the means (seen with sip_trades)."""
    import sipat.experiment.runner as experiment

    real_train = experiment.train

    def train(model, data, cfg, **kwargs):
        if cfg.seed == 1:
            raise FloatingPointError("training loss became nan at epoch 1, batch 3; lower lr")
        return real_train(model, data, cfg, **kwargs)

    monkeypatch.setattr(experiment, "train", train)
    cfg = ExperimentConfig.from_dict({**TINY, "methods": ["pgd_at"], "eval_attacks": ["pgd"]})
    messages: list[str] = []
    files = run_experiment(cfg, tmp_path, device="cpu", progress=False, log=messages.append)
    runs = _runs(tmp_path)
    assert runs["pgd_at__none__seed1"]["diverged"].startswith("training loss became nan")
    assert any("pgd_at__none__seed1: DIVERGED" in m for m in messages)
    with open(files["csv"], newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["n_seeds"] == "1" and row["diverged"] == "1" and row["seeds"] == "0"
    assert float(row["clean_acc_mean"]) == pytest.approx(runs["pgd_at__none__seed0"]["clean_acc"], abs=1e-6)
    assert "| pgd_at | none | 1 (+1 diverged) |" in files["markdown"].read_text()
    messages.clear()
    run_experiment(cfg, tmp_path, device="cpu", progress=False, log=messages.append)  # not redone on resume
    assert messages[0].startswith("2 of 2 runs already finished")
