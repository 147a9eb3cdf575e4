"""Strokes are retrievable: the JSON export of annotations carries each stroke record, and `strokes_length`
counts its strokes (not the keys of the painter's record)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from backend.models import Annotation
from backend.services.exports import stroke_count

RECORD = {
    "version": 1,
    "image_width": 8,
    "image_height": 6,
    "display_width": 400,
    "display_height": 300,
    "device_pixel_ratio": 1,
    "coverage": 0.2,
    "counts": {"undo": 1, "redo": 0, "clear": 1},
    "actions": [
        {"mode": "paint", "size": 2, "pointer": "mouse", "points": [[1, 1, 10], [4, 1, 20]]},
        {"mode": "clear", "t": 30},
        {"mode": "paint", "size": 2, "pointer": "mouse", "points": [[1, 2, 40]]},
        {"mode": "erase", "size": 3, "pointer": "mouse", "points": [[1, 2, 50], [2, 2, 60]]},
    ],
}


def test_json_export_carries_the_strokes_and_counts_them(admin: TestClient, seeded, session: Session) -> None:
    s = seeded()
    first = s.annotations[0].id
    session.execute(update(Annotation).where(Annotation.id == first).values(strokes=RECORD))
    session.commit()
    rows = {r["annotation_id"]: r for r in admin.get(f"/admin/studies/{s.study.id}/export/annotations.json").json()}
    assert rows[first]["strokes"] == RECORD and rows[first]["strokes_length"] == 3  # 2 paint + 1 erase, no clear
    other = next(r for i, r in rows.items() if i != first)
    assert other["strokes"] == [[[0, 0], [1, 1]]] and other["strokes_length"] == 1  # a plain list of strokes
    csv_text = admin.get(f"/admin/studies/{s.study.id}/export/annotations.csv").text
    assert csv_text.splitlines()[0].endswith(",strokes") and '""actions"":' in csv_text  # JSON text in CSV
    assert stroke_count(None) == 0 and stroke_count({"actions": "x"}) == 0
