"""Dataset upload and browsing through the research API: both archive layouts, refusals that leave nothing
behind, deduplication, summaries, image pages and the researcher-only image and salience downloads."""

from __future__ import annotations

import io
import json

import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.models import Dataset, Image, SalienceMap
from backend.settings import Settings
from tests.backend.factories import BOTH_DATABASES, png_bytes
from tests.backend.research_factories import blob_files, zip_bytes


def _gray(value: int, size: tuple[int, int] = (8, 6)) -> bytes:
    out = io.BytesIO()
    PILImage.new("L", size, value).save(out, format="PNG")
    return out.getvalue()


IMAGE_FOLDER = {
    "train/cat/a.png": png_bytes(seed=1),
    "train/cat/b.png": png_bytes(seed=2),
    "train/dog/c.png": png_bytes(seed=3),
    "test/dog/d.png": png_bytes(seed=4),
    "salience/train/cat/a.png": _gray(200),
    "README.txt": "a tiny dataset",
}
MANIFEST = {
    "manifest.csv": "image_path,image_class,bounding_boxes,split\n"
    'img/1.png,cat,"[[0, 0, 4, 3]]",train\n'
    "img/2.png,dog,,train\n"
    'img/3.png,dog,"[[2, 2, 2, 2], [0, 0, 1, 1]]",test\n',
    "img/1.png": png_bytes(seed=11),
    "img/2.png": png_bytes(seed=12),
    "img/3.png": png_bytes(seed=13),
}


def upload(api: TestClient, data: bytes, *, name: str | None = None, filename: str = "tiny.zip"):
    form = {"name": name} if name is not None else {}
    return api.post("/api/v1/datasets", files={"file": (filename, data, "application/zip")}, data=form)


def count_rows(session: Session) -> tuple[int, int, int]:
    session.expire_all()
    return tuple(session.scalar(select(func.count()).select_from(t)) for t in (Dataset, Image, SalienceMap))  # type: ignore[return-value]


@BOTH_DATABASES
def test_upload_image_folder(api: TestClient, session: Session) -> None:
    r = upload(api, zip_bytes(IMAGE_FOLDER))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "tiny" and body["n_images"] == 4 and body["created"] is True

    detail = api.get(f"/api/v1/datasets/{body['id']}").json()
    assert detail["by_label"] == {"cat": 2, "dog": 2}
    assert detail["by_split"] == {"test": 1, "train": 3}
    assert detail["by_label_and_split"] == {"cat": {"train": 2}, "dog": {"test": 1, "train": 1}}
    assert detail["salience_images"] == {"imported": 1, "gradcam": 0, "human_mean": 0}
    assert detail["n_with_salience"] == 1 and detail["salience_coverage"] == pytest.approx(0.25)

    page = api.get(f"/api/v1/datasets/{body['id']}/images", params={"offset": 1, "limit": 2}).json()
    assert page["total"] == 4 and page["offset"] == 1 and len(page["items"]) == 2
    everything = api.get(f"/api/v1/datasets/{body['id']}/images").json()["items"]
    a = next(item for item in everything if item["filename"].endswith("cat/a.png"))
    assert a["salience_sources"] == ["imported"] and (a["width"], a["height"]) == (8, 6)

    file = api.get(a["file_url"])
    assert file.status_code == 200 and file.content == IMAGE_FOLDER["train/cat/a.png"]
    assert file.headers["content-type"] == "image/png"
    salience = api.get(f"/api/v1/images/{a['id']}/salience", params={"source": "imported"})
    assert salience.status_code == 200
    assert PILImage.open(io.BytesIO(salience.content)).getpixel((0, 0)) == 200
    assert api.get(f"/api/v1/images/{a['id']}/salience").status_code == 200  # preferred source found
    missing = api.get(f"/api/v1/images/{a['id']}/salience", params={"source": "gradcam"})
    assert missing.status_code == 404 and "imported" in missing.json()["detail"]
    other = next(item for item in everything if item["salience_sources"] == [])
    assert api.get(f"/api/v1/images/{other['id']}/salience").status_code == 404
    assert api.get(f"/api/v1/images/{other['id']}/salience", params={"source": "bogus"}).status_code == 422


def test_upload_csv_manifest_with_boxes(api: TestClient, session: Session) -> None:
    r = upload(api, zip_bytes(MANIFEST), name="boxes")
    assert r.status_code == 201, r.text
    dataset_id = r.json()["id"]
    detail = api.get(f"/api/v1/datasets/{dataset_id}").json()
    assert detail["name"] == "boxes" and detail["n_images"] == 3
    assert detail["by_split"] == {"test": 1, "train": 2} and detail["salience_images"]["imported"] == 2

    images = {i["filename"]: i for i in api.get(f"/api/v1/datasets/{dataset_id}/images").json()["items"]}
    assert images["img/2.png"]["salience_sources"] == []
    mask = api.get(f"/api/v1/images/{images['img/1.png']['id']}/salience").content
    pixels = PILImage.open(io.BytesIO(mask))
    assert pixels.size == (8, 6)
    assert pixels.getpixel((0, 0)) == 255 and pixels.getpixel((3, 2)) == 255  # inside the box [0, 0, 4, 3]
    assert pixels.getpixel((4, 0)) == 0 and pixels.getpixel((0, 3)) == 0  # just outside it


def _truncated_png_zip() -> bytes:
    members = dict(IMAGE_FOLDER)
    members["train/dog/c.png"] = png_bytes(seed=3, noise=0.5)[:-30]
    return zip_bytes(members)


@BOTH_DATABASES
@pytest.mark.parametrize(
    ("data", "status", "fragment"),
    [
        (b"PK-this is not a zip at all", 422, "not a zip"),
        (zip_bytes({**IMAGE_FOLDER, "../evil/x.png": png_bytes(seed=9)}), 422, "outside the archive"),
        (_truncated_png_zip(), 422, "train/dog/c.png"),
        (zip_bytes({"cat/a.png": png_bytes(seed=1)}), 422, "at least 2"),
    ],
    ids=["not-a-zip", "dotdot-member", "truncated-png", "one-class"],
)
def test_rejected_uploads_leave_nothing(
    api: TestClient, session: Session, settings: Settings, data: bytes, status: int, fragment: str
) -> None:
    upload(api, zip_bytes(MANIFEST))  # something stored before, which must stay as it is
    rows, blobs = count_rows(session), blob_files(settings.data_dir)
    r = upload(api, data)
    assert r.status_code == status and fragment in r.json()["detail"], r.text
    assert count_rows(session) == rows
    assert blob_files(settings.data_dir) == blobs


def _noisy_zip() -> bytes:
    return zip_bytes(
        {f"{c}/{i}.png": png_bytes(32, 32, seed=10 * k + i, noise=0.9) for k, c in enumerate("ab") for i in range(3)}
    )


def test_upload_over_the_size_limit_is_413(api: TestClient, session: Session, settings: Settings) -> None:
    data = _noisy_zip()
    settings.max_upload_bytes = len(data) - 1  # the app holds this same Settings object
    r = upload(api, data)
    assert r.status_code == 413 and "larger than" in r.json()["detail"]
    assert count_rows(session) == (0, 0, 0) and blob_files(settings.data_dir) == []

    # Without a Content-Length (chunked): refused while streaming, once the limit is passed.
    boundary = "sipat-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.zip"\r\n'
            "Content-Type: application/zip\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    settings.max_upload_bytes = 1024
    chunks = (body[i : i + 512] for i in range(0, len(body), 512))
    r = api.post(
        "/api/v1/datasets", content=chunks, headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert r.status_code == 413, r.text
    assert count_rows(session) == (0, 0, 0) and blob_files(settings.data_dir) == []

    settings.max_upload_bytes = len(data)
    assert upload(api, data).status_code == 201


def test_reupload_returns_the_same_dataset(api: TestClient, session: Session, settings: Settings) -> None:
    first = upload(api, zip_bytes(IMAGE_FOLDER), name="first")
    rows, blobs = count_rows(session), blob_files(settings.data_dir)
    again = upload(api, zip_bytes(IMAGE_FOLDER), name="second")
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["id"] == first.json()["id"] and again.json()["name"] == "first"
    assert count_rows(session) == rows and blob_files(settings.data_dir) == blobs

    relabelled = {k.replace("/cat/", "/kitten/"): v for k, v in IMAGE_FOLDER.items()}
    third = upload(api, zip_bytes(relabelled))
    assert third.status_code == 201 and third.json()["id"] != first.json()["id"]
    assert blob_files(settings.data_dir) == blobs  # same files: the blobs are shared, not copied

    listing = api.get("/api/v1/datasets").json()
    assert listing["total"] == 2 and [d["id"] for d in listing["items"]] == [third.json()["id"], first.json()["id"]]


def test_upload_form_errors(api: TestClient) -> None:
    r = api.post("/api/v1/datasets", data={"name": "x"})
    assert r.status_code == 422 and "'file'" in r.json()["detail"]
    r = api.post("/api/v1/datasets", content=json.dumps({"file": "x"}), headers={"content-type": "application/json"})
    assert r.status_code == 422 and "multipart/form-data" in r.json()["detail"]
    assert api.get("/api/v1/datasets/999").status_code == 404
    assert api.get("/api/v1/datasets/999/images").status_code == 404
    assert api.get("/api/v1/images/999/file").status_code == 404
