"""The model comparison: models that differ only by seed are one mean ± sd row and line; the legend and the
table name each model's salience source with its human coverage."""

from __future__ import annotations

import statistics

from backend.admin.comparison import ModelRow, models_figure

RECIPE = {"dataset_id": 1, "method": "sip_at", "arch": "small_cnn", "salience": "annotations", "epochs": 2}


def model(id: int, seed: int, clean: float, robust: float, **params: object) -> ModelRow:
    p = {**RECIPE, "seed": seed, "name": f"m{id}", **params}
    coverage = {"human": 3, "n_train": 48} if p["salience"] == "annotations" else None
    return ModelRow(
        id=id,
        name=f"m{id}",
        method=str(p["method"]),
        arch="small_cnn",
        seed=seed,
        dataset_id=1,
        status="succeeded",
        metrics={"clean_acc": clean, "robust_acc": {"pgd": {"0.1": robust}}, "coverage": coverage},
        params=p,
    )


def test_seeds_of_one_recipe_are_a_mean_and_sd_and_salience_is_named() -> None:
    seeds = [model(1, 0, 0.8, 0.4), model(2, 1, 0.9, 0.5), model(3, 2, 0.7, 0.3)]
    other = model(4, 0, 0.6, 0.35, salience="gradcam")
    untrained = ModelRow(5, "pending", "pgd_at", "small_cnn", 0, 1, "queued", None, {"seed": 0})
    fig = models_figure([untrained, other, *seeds])
    table = fig.tables[0]
    rows = {row[0]: dict(zip(table.columns, row, strict=True)) for row in table.rows}
    assert set(rows) == {"5", "4", "1, 2, 3"}
    group = rows["1, 2, 3"]
    mean, sd = statistics.fmean([0.8, 0.9, 0.7]), statistics.stdev([0.8, 0.9, 0.7])
    assert group["clean_acc"] == f"{mean:.3f} ± {sd:.3f}" == "0.800 ± 0.100"
    assert group["pgd@0.1"] == "0.400 ± 0.100" and group["seed"] == "0, 1, 2"
    assert (group["salience"], rows["4"]["salience"], rows["5"]["salience"]) == ("human 3/48", "Grad-CAM", "none")
    assert rows["4"]["clean_acc"] == 0.6 and rows["5"]["clean_acc"] is None
    assert fig.svg is not None
    assert "salience human 3/48 · mean ± sd of seeds 0, 1, 2 (pgd)" in fig.svg
    assert "#4 m4 · salience Grad-CAM (pgd)" in fig.svg
    colours = {c for c in ("#56b4e9", "#e69f00") if c in fig.svg}
    assert len(colours) == 2  # one colour per line: the group and the lone model


def test_a_different_recipe_is_not_averaged() -> None:
    fig = models_figure([model(1, 0, 0.8, 0.4), model(2, 1, 0.9, 0.5, epochs=5)])
    assert [row[0] for row in fig.tables[0].rows] == ["2", "1"]
