"""Running an experiment: the runs of one seed share data, maps and the reference Grad-CAM model (`_SeedContext`);
each run trains, evaluates and is written as soon as it finishes, so an interrupted experiment resumes."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from sipat.checkpoints import atomic_write_text
from sipat.data import InMemoryDataset, contract, side
from sipat.experiment.arms import Variant
from sipat.experiment.choice import KeptSet, active_kept, random_kept
from sipat.experiment.config import (
    EXACT_MASK_DATASETS,
    SALIENCE_METHODS,
    ExperimentConfig,
    RunSpec,
    plan_runs,
    run_settings,
)
from sipat.experiment.datasets import WithSalience, load_data, subset
from sipat.experiment.maps import MapSet, dataset_maps, variant_maps
from sipat.experiment.quality import map_quality
from sipat.experiment.report import write_report
from sipat.experiment.sources import FilledMaps, PredictedMaps, filled_maps, predicted_maps, train_images
from sipat.experiment.store import checkpoint_path, finished_runs, run_path
from sipat.training import model_meta, save_checkpoint, train


class _SeedContext:
    """What the runs of one seed share: data, maps, the evaluation subset, the reference Grad-CAM maps."""

    def __init__(self, cfg: ExperimentConfig, seed: int, out: Path, device: str | None, log: Callable) -> None:
        self.cfg, self.seed, self.out, self.device, self.log = cfg, seed, out, device, log
        self.data_seed = seed if cfg.data_seed is None else cfg.data_seed
        self.train = subset(load_data(cfg, "train", self.data_seed), cfg.train_limit, self.data_seed)
        self.test = subset(load_data(cfg, "test", self.data_seed), cfg.eval_limit, self.data_seed + 1)
        self._human: MapSet | None = None
        self._truth: MapSet | None = None
        self._reference: dict[str, MapSet] | None = None
        self._maps: dict[str, MapSet] = {}
        self._kept: dict[tuple[float, str], KeptSet] = {}
        self._predicted: dict[tuple[float, str], PredictedMaps] = {}
        self._filled: dict[tuple[str, float, str], FilledMaps] = {}
        self._masked_test: Dataset | None = None

    def new_model(self, seed: int):
        from sipat.models import build_model, default_arch_for

        ds = contract(self.train)
        arch = self.cfg.arch or default_arch_for(side(ds), ds.in_channels)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = build_model(
                arch,
                num_classes=ds.num_classes,
                in_channels=ds.in_channels,
                image_size=side(ds),
                weights_path=self.cfg.weights_path,
            )
        meta = model_meta(
            model, num_classes=ds.num_classes, in_channels=ds.in_channels, image_size=side(ds), classes=ds.classes
        )
        return model, meta

    def truth(self) -> MapSet:
        """The training set's own maps: on `EXACT_MASK_DATASETS` the exact object masks."""
        if self._truth is None:
            self._truth = dataset_maps(self.train)
        return self._truth

    def human(self) -> MapSet:
        """The training images' human maps: the dataset's own, or with ``annotators`` the mean of the simulated
        annotators' paintings of its exact masks (seeded by the annotators' seed: one painting effort per data)."""
        if self._human is None:
            maps = self.truth()
            if not bool(maps.has.any()):
                raise ValueError(f"{self.cfg.dataset} has no human salience maps; use the gradcam variant for it")
            if self.cfg.annotators is not None:
                from sipat.predictor.annotators import human_mean

                if not bool(maps.has.all()):
                    raise ValueError("simulated annotators need the exact mask of every training image")
                a = self.cfg.annotators
                maps = MapSet.from_float(human_mean(maps.to_float(), n_annotators=a["count"], seed=a["seed"]))
            self._human = maps
        return self._human

    def reference(self) -> dict[str, MapSet]:
        """Grad-CAM maps of the train and evaluation images from a ``standard`` reference model (cached)."""
        if self._reference is not None:
            return self._reference
        cfg = self.cfg
        path = self.out / "salience" / f"gradcam_seed{self.seed}.pt"
        keys = (
            "dataset",
            "dataset_params",
            "data_seed",
            "train_limit",
            "eval_limit",
            "arch",
            "weights_path",
            "batch_size",
            "lr",
            "momentum",
            "weight_decay",
            "reference_epochs",
        )
        settings = {k: getattr(cfg, k) for k in keys}
        settings = json.loads(json.dumps({**settings, "seed": self.seed}))
        if path.is_file():
            saved = torch.load(path, map_location="cpu", weights_only=True)
            if saved.get("settings") == json.dumps(settings, sort_keys=True):
                self._reference = {k: MapSet(*saved[k]) for k in ("train", "test")}
                return self._reference
        from sipat.models import gradcam_layer
        from sipat.salience import gradcam

        self.log(f"seed {self.seed}: training the Grad-CAM reference model ({cfg.reference_epochs} epochs standard)")
        model, _ = self.new_model(self.seed)
        # standard training uses no attack, so only the optimiser settings and the budget count; amp stays off,
        # as the reference model always trained
        rcfg = cfg.train_config("standard", self.seed, epochs=max(cfg.reference_epochs, 1), amp="none")
        train(model, self.train, rcfg, device=self.device)
        dev = next(model.parameters()).device
        layer = gradcam_layer(model)
        result = {}
        for split, ds in (("train", self.train), ("test", self.test)):
            parts = []
            for x, y, _ in DataLoader(ds, batch_size=cfg.eval_batch_size, num_workers=cfg.train.num_workers):
                parts.append(MapSet.from_float(gradcam(model, x.to(dev), y.to(dev), layer).cpu()))
            result[split] = MapSet.cat(parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload: dict[str, Any] = {"settings": json.dumps(settings, sort_keys=True)}
        payload.update({k: (v.values, v.has) for k, v in result.items()})
        torch.save(payload, path.with_name(path.name + ".tmp"))
        path.with_name(path.name + ".tmp").replace(path)
        self._reference = result
        return result

    def kept(self, unannotated: float, choice: str = "random") -> KeptSet:
        """The human maps that stay after blanking ``unannotated`` of them, chosen by ``choice`` (cached per
        (share, choice), so every fill of one share and choice starts from the same kept images)."""
        if (unannotated, choice) not in self._kept:
            if choice == "random":
                kept = random_kept(self.human(), unannotated, self.seed)
            elif choice == "active":
                kept = active_kept(
                    train_images(self.train), _labels(self.train), self.human(), self.reference()["train"],
                    unannotated=unannotated, seed=self.seed, settings=self.cfg.predictor,
                    rounds=self.cfg.active_rounds, device=self.device, log=self.log,
                )  # fmt: skip
            else:
                raise ValueError(f"unknown choice {choice!r}; use random or active")
            self._kept[unannotated, choice] = kept
        return self._kept[unannotated, choice]

    def predicted(self, unannotated: float, choice: str = "random") -> PredictedMaps:
        """The ``predicted`` source's maps after blanking ``unannotated`` of the human ones (cached per share)."""
        if (unannotated, choice) not in self._predicted:
            self._predicted[unannotated, choice] = predicted_maps(
                self.train, self.human(), unannotated=unannotated, seed=self.seed, settings=self.cfg.predictor,
                device=self.device, log=self.log, kept=self.kept(unannotated, choice).maps,
            )  # fmt: skip
        return self._predicted[unannotated, choice]

    def filled(self, fill: str, unannotated: float, choice: str = "random") -> FilledMaps:
        """Human maps with ``unannotated`` of them blanked and those images given the ``fill`` source's maps."""
        if (fill, unannotated, choice) not in self._filled:
            if fill != "gradcam":
                raise ValueError(f"unknown fill {fill!r}; use gradcam")
            self._filled[fill, unannotated, choice] = filled_maps(
                self.human(), self.reference()["train"], unannotated=unannotated, seed=self.seed, source=fill,
                kept=self.kept(unannotated, choice).maps,
            )  # fmt: skip
        return self._filled[fill, unannotated, choice]

    def quality(self, variant: Variant) -> dict[str, Any] | None:
        """`map_quality` of the variant's training maps against the exact masks, for a variant that blanks human
        maps on a dataset that has exact masks; else None."""
        if self.cfg.dataset not in EXACT_MASK_DATASETS or not variant.unannotated:
            return None
        if variant.source not in ("human", "predicted"):
            return None
        kept = self.kept(variant.unannotated, variant.choice).maps.has
        return map_quality(self.maps(variant), kept, self.truth(), threshold=self.cfg.train.threshold)

    def maps(self, variant: Variant) -> MapSet:
        if variant.name not in self._maps:
            if variant.fill is not None:
                base = self.filled(variant.fill, variant.unannotated, variant.choice).maps
            elif variant.source == "human" and variant.choice != "random":
                base = self.kept(variant.unannotated, variant.choice).maps  # blanked already (variant_maps)
            elif variant.source == "human":
                base = self.human()
            elif variant.source == "predicted":
                base = self.predicted(variant.unannotated, variant.choice).maps
            else:
                base = self.reference()["train"]
            self._maps[variant.name] = variant_maps(base, variant, self.seed, self.cfg.train.threshold)
        return self._maps[variant.name]

    def masked_test(self) -> Dataset:
        """The evaluation set with the maps the masked attack spares: its own, else reference Grad-CAM."""
        if self._masked_test is None:
            own = dataset_maps(self.test)
            self._masked_test = self.test if bool(own.has.any()) else WithSalience(self.test, self.reference()["test"])
        return self._masked_test


def _labels(ds: Dataset, batch_size: int = 512) -> torch.Tensor:
    """(n,) the training labels (the class balance of an active choice)."""
    if isinstance(ds, InMemoryDataset):
        return ds.labels.long()
    return torch.cat([torch.as_tensor(y) for _, y, _ in DataLoader(ds, batch_size=batch_size)]).long()


def _execute(run: RunSpec, ctx: _SeedContext, out: Path, bar_factory: Callable | None) -> dict[str, Any]:
    from sipat.evaluation import evaluate

    cfg = ctx.cfg
    train_set: Dataset = ctx.train
    salient_share = annotated_share = map_source = kept = quality = None
    clean_share = 0.0
    v = run.variant
    if run.method in SALIENCE_METHODS:
        if v.source == "predicted":
            map_source = ctx.predicted(v.unannotated, v.choice).record()
        elif v.fill is not None:
            map_source = ctx.filled(v.fill, v.unannotated, v.choice).record()
        if v.source in ("human", "predicted") and v.unannotated:
            kept = ctx.kept(v.unannotated, v.choice).record()
        quality = ctx.quality(v)
        maps = ctx.maps(v)
        cover = maps.coverage(cfg.train.threshold)
        salient_share = float(cover.mean())
        annotated_share = float(maps.has.float().mean())
        train_set = WithSalience(ctx.train, maps)
        if run.method == "clean_mix":
            clean_share = salient_share
            if clean_share >= 1:
                raise ValueError(f"{run.run_id}: the maps cover every pixel, so clean_mix would never perturb")
    changes: dict[str, Any] = {"clean_share": clean_share}
    if run.eps_factor is not None:  # the arm's radius; the PGD step scales with it (alpha / eps kept)
        changes.update(eps=cfg.eps * run.eps_factor, alpha=cfg.train_alpha * run.eps_factor)
    if run.beta is not None:
        changes["trades_beta"] = run.beta
    tcfg = cfg.train_config("pgd_at" if run.method == "clean_mix" else run.method, run.seed, **changes)
    model, meta = ctx.new_model(run.seed)
    ckpt = checkpoint_path(out, run)
    settings = run_settings(cfg, run)
    bar = None

    def progress(p) -> None:
        nonlocal bar
        if bar_factory is None:
            return
        if bar is None:
            bar = bar_factory(p.steps_per_epoch * p.epochs, run.run_id)
            bar.update(p.epoch * p.steps_per_epoch + p.step - 1)
        bar.update(1)
        bar.set_postfix(epoch=p.epoch + 1, loss=f"{p.loss:.3f}", acc=f"{p.accuracy:.3f}")

    t0 = time.perf_counter()
    record = {
        "run": run.run_id,
        "method": run.method,
        "arm": run.arm.name,
        "eps_factor": run.eps_factor or 1.0,
        "train_eps": tcfg.eps,
        "trades_beta": tcfg.trades_beta,
        "variant": run.variant.name,
        "seed": run.seed,
        "settings": settings,
        "arch": meta["arch"],
        "n_train": len(contract(ctx.train)),
        "salient_share": salient_share,
        "annotated_share": annotated_share,
        "clean_share": clean_share,
        "map_source": map_source,
        "kept_maps": kept,
        "map_quality": quality,
        "train_config": tcfg.to_dict(),
    }
    try:
        history = train(
            model,
            train_set,
            tcfg,
            device=ctx.device,
            progress=progress,
            checkpoint=ckpt,
            checkpoint_meta={**meta, "settings": settings},
        ).history
    except FloatingPointError as exc:  # a diverged run is a result: kept, counted, left out of the means
        return {
            **record,
            "diverged": str(exc),
            "clean_acc": math.nan,
            "robust_acc": {},
            "robust_acc_masked": {},
            "train_seconds": time.perf_counter() - t0,
            "eval_seconds": 0.0,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    finally:
        if bar is not None:
            bar.close()
    t1 = time.perf_counter()
    common: dict[str, Any] = dict(
        eps_grid=cfg.eval_eps, attacks=cfg.eval_attacks, pgd_steps=cfg.eval_pgd_steps,
        apgd_steps=cfg.eval_apgd_steps, threshold=cfg.train.threshold, batch_size=cfg.eval_batch_size, seed=run.seed,
        device=ctx.device,
    )  # fmt: skip
    plain = evaluate(model, ctx.test, **common)
    masked = evaluate(model, ctx.masked_test(), masked=True, **common) if cfg.eval_masked else None
    t2 = time.perf_counter()
    if cfg.save_models:
        save_checkpoint(out / "models" / f"{run.run_id}.pt", model, tcfg, meta={**meta, "run": run.run_id})
    return {
        **record,
        "n_test": plain.n,
        "clean_acc": plain.clean_acc,
        "robust_acc": plain.to_dict()["robust_acc"],
        "robust_acc_masked": masked.to_dict()["robust_acc"] if masked is not None else None,
        "history": history,
        "train_seconds": t1 - t0,
        "eval_seconds": t2 - t1,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def run_experiment(
    cfg: ExperimentConfig,
    out: str | Path,
    *,
    device: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Run every planned run not finished yet (seed by seed), then write the report; returns its files.

    Each run's JSON is written as soon as it finishes, so an interrupted experiment loses at most the current
    run's unfinished epoch; the report is written also when interrupted (from the runs finished so far).
    """
    from tqdm.auto import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.json", json.dumps(cfg.to_dict(), indent=2))
    runs = plan_runs(cfg)
    done = finished_runs(cfg, out, runs)
    bar = tqdm(total=len(runs), initial=len(done), desc="runs", unit="run", dynamic_ncols=True, disable=not progress)
    say = log or (lambda msg: bar.write(msg))
    if done:
        say(f"{len(done)} of {len(runs)} runs already finished in {out}; skipping them")

    def inner(total: int, desc: str):
        return tqdm(total=total, desc=desc, unit="batch", dynamic_ncols=True, leave=False, disable=not progress)

    try:
        for seed in cfg.seeds:
            todo = [r for r in runs if r.seed == seed and r.run_id not in done]
            if not todo:
                continue
            ctx = _SeedContext(cfg, seed, out, device, say)
            for run in todo:
                bar.set_postfix_str(run.run_id)
                payload = _execute(run, ctx, out, inner if progress else None)
                atomic_write_text(run_path(out, run), json.dumps(payload, indent=2))
                checkpoint_path(out, run).unlink(missing_ok=True)
                done[run.run_id] = payload
                bar.update(1)
                outcome = (
                    f"DIVERGED ({payload['diverged']})"
                    if payload.get("diverged")
                    else (f"clean {payload['clean_acc']:.4f}")
                )
                seconds = f"train {payload['train_seconds']:.0f} s, eval {payload['eval_seconds']:.0f} s"
                say(f"{run.run_id}: {outcome}, {seconds}")
    finally:
        bar.close()
        files = write_report(cfg, out, [done[r.run_id] for r in runs if r.run_id in done], total=len(runs))
    return files
