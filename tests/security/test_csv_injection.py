"""CSV exports never hand a spreadsheet a formula: text cells that start with = + - @ tab or CR get a leading
quote (`backend.csvsafe`); numbers, and the JSON exports, keep their values as they are."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.admin.figures import Table
from backend.csvsafe import spreadsheet_safe
from backend.models import User
from backend.storage import BlobStore
from tests.backend.factories import make_open_study
from tests.backend.research_factories import finish_session, start_session


@pytest.mark.parametrize("text", ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"])
def test_formula_starts_are_quoted(text: str) -> None:
    assert spreadsheet_safe(text) == "'" + text


@pytest.mark.parametrize("value", ["prolific-1", "a=b", "", -3, -0.5, 7, None])
def test_other_values_are_unchanged(value: object) -> None:
    assert spreadsheet_safe(value) == value


def test_dashboard_tables_quote_formulas() -> None:
    table = Table(columns=["label", "n"], rows=[["=cmd|' /C calc'!A0", -1], ["cat", 2]])
    rows = list(csv.reader(io.StringIO(table.csv())))
    assert rows[1:] == [["'=cmd|' /C calc'!A0", "-1"], ["cat", "2"]]


def test_exported_participant_ids_are_quoted(api: TestClient, session: Session, storage: BlobStore) -> None:
    study = make_open_study(session, storage)
    study.owner_id = session.scalar(select(User.id).where(User.email == "researcher@example.org"))  # `api`'s
    session.commit()
    hostile = "-2-3.cmd"  # the widest a recruitment id may be: letters, digits, _ . : -
    finish_session(api, start_session(api, "pilot", external_id=hostile).json()["token"])
    for name, column in (("participants", "external_id"), ("responses", "participant_external_id")):
        r = api.get(f"/api/v1/studies/{study.id}/export/{name}.csv")
        assert r.status_code == 200, r.text[:200]
        cells = {row[column] for row in csv.DictReader(io.StringIO(r.text))}
        assert cells == {"'" + hostile}, (name, cells)
    people = api.get(f"/api/v1/studies/{study.id}/export/participants.json").json()
    assert [p["external_id"] for p in people] == [hostile]  # JSON is data, not a spreadsheet: unchanged
