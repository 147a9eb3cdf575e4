"""The model comparison on the dashboard in Chromium: each model (or group of seeds) its own colour, the legend
naming it with its salience source (human n/N, Grad-CAM, imported, none), every legend label readable (inside
the figure, none over another, as the browser lays the text out), and the table's salience column the same."""

from __future__ import annotations

from typing import Any

import pytest

from backend.auth import create_user
from backend.models import Dataset, TrainedModel
from tests.browser.driver import PageWatch

pytestmark = pytest.mark.browser

EMAIL, PASSWORD = "researcher@example.org", "a long passphrase"
RECIPE = {"method": "sip_at", "arch": "small_cnn", "epochs": 2, "eps": 0.1}


def add_model(s: Any, dataset_id: int, name: str, clean: float, robust: float, **params: Any) -> int:
    p = {**RECIPE, "dataset_id": dataset_id, **params}
    coverage = {"human": 3, "n_train": 48, "min_annotators": 1} if p.get("salience") == "annotations" else None
    metrics = {"clean_acc": clean, "robust_acc": {"pgd": {"0.0": clean, "0.1": robust}}, "coverage": coverage}
    model = TrainedModel(
        name=name, arch=p["arch"], method=p["method"], dataset_id=dataset_id, config={"params": p}, metrics=metrics
    )
    s.add(model)
    s.flush()
    return model.id


def test_legend_names_each_model_and_its_salience_source(server: Any, browser: Any) -> None:
    with server.session() as s:
        create_user(s, EMAIL, PASSWORD, is_admin=True)
        dataset = Dataset(name="legend digits")
        s.add(dataset)
        s.flush()
        seeds = [
            add_model(s, dataset.id, "human", 0.9 - k / 20, 0.5 - k / 20, salience="annotations", seed=k)
            for k in range(3)
        ]
        gradcam = add_model(s, dataset.id, "cam", 0.85, 0.42, salience="gradcam", seed=0)
        imported = add_model(s, dataset.id, "given maps", 0.8, 0.4, salience="imported", seed=0)
        pgd = add_model(s, dataset.id, "baseline", 0.82, 0.38, method="pgd_at", seed=0)
        s.commit()

    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    watch = PageWatch().attach(page)
    page.goto(f"{server.url}/admin/login")
    page.fill("#email", EMAIL)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/admin**")
    page.goto(f"{server.url}/admin/training")

    labels = page.locator("#models svg .legend-label").evaluate_all("els => els.map(e => e.textContent)")
    expected = [
        "sip_at small_cnn · salience human 3/48 · mean ± sd of seeds 0, 1, 2 (pgd)",
        f"#{gradcam} cam · salience Grad-CAM (pgd)",
        f"#{imported} given maps · salience imported (pgd)",
        f"#{pgd} baseline · salience none (pgd)",
    ]
    assert sorted(labels) == sorted(expected), labels
    swatches = page.locator("#models svg .legend-swatch").evaluate_all("els => els.map(e => e.getAttribute('stroke'))")
    assert len(set(swatches)) == len(expected), swatches  # one colour per model or group of seeds

    # What the browser drew: each label inside the figure and clear of the others and of the swatches.
    boxes = page.evaluate(
        """() => {
          const svg = document.querySelector('#models svg').getBoundingClientRect();
          const box = (e) => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
          const items = [...document.querySelectorAll('#models svg .legend-label, #models svg .legend-swatch')];
          return {svg: [svg.left, svg.top, svg.right, svg.bottom], items: items.map(box)};
        }"""
    )
    left, top, right, bottom = boxes["svg"]
    items = boxes["items"]
    for x0, y0, x1, y1 in items:
        assert left <= x0 and x1 <= right and top <= y0 and y1 <= bottom, (boxes["svg"], (x0, y0, x1, y1))
    for i, a in enumerate(items):
        for b in items[i + 1 :]:
            overlap_x = min(a[2], b[2]) - max(a[0], b[0])
            overlap_y = min(a[3], b[3]) - max(a[1], b[1])
            assert overlap_x <= 0.5 or overlap_y <= 0.5, ("legend entries overlap", a, b)

    rows = page.locator("#models table.data tbody tr")
    columns = page.locator("#models table.data thead th").all_inner_texts()
    salience = columns.index("salience")
    by_id = {r[0]: r[salience] for r in (rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count()))}
    group = next(k for k in by_id if "," in k)  # the seeds' row lists their ids
    assert sorted(int(i) for i in group.split(",")) == seeds and by_id[group] == "human 3/48"
    assert (by_id[str(gradcam)], by_id[str(imported)], by_id[str(pgd)]) == ("Grad-CAM", "imported", "none")
    assert watch.errors == [], watch.errors
    context.close()
