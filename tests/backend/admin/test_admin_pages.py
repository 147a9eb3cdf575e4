"""Every dashboard page renders with seeded data and shows its numbers; the forms act through the services."""

from __future__ import annotations

from admin_factories import Enqueued, Seeded
from fastapi.testclient import TestClient


def test_every_page_renders(admin: TestClient, seeded, enqueued: Enqueued) -> None:
    s: Seeded = seeded()
    sid = s.study.id
    sset = s.study.config["stimulus_set_id"]
    image_id = s.annotations[0].trial.stimulus.image_id
    pages = [
        "/admin",
        "/admin/datasets",
        "/admin/datasets/1",
        "/admin/stimulus-sets",
        f"/admin/stimulus-sets/{sset}",
        "/admin/studies",
        f"/admin/studies/{sid}",
        f"/admin/studies/{sid}/results?n_boot=20",
        f"/admin/studies/{sid}/annotations",
        "/admin/training",
        f"/admin/studies/{sid}/participants/{s.participants[0].id}/withdraw",
    ]
    for path in pages:
        r = admin.get(path)
        assert r.status_code == 200, (path, r.text[:2000])
        assert '<script type="module"' in r.text
        assert "Content-Security-Policy" in r.headers
    assert admin.get(f"/admin/images/{image_id}/overlay.png?source=annotations").status_code == 200
