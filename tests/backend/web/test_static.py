"""The front end's static files: revalidated on each load, and a current copy costs a bodiless 304."""

from __future__ import annotations

from email.utils import formatdate, parsedate_to_datetime

from fastapi.testclient import TestClient

from study_frontend import STATIC_DIR

ASSET = "/static/js/api.js"


def test_a_file_comes_with_its_validators_and_must_be_revalidated(client: TestClient) -> None:
    response = client.get(ASSET)
    assert response.status_code == 200 and response.content == (STATIC_DIR / "js" / "api.js").read_bytes()
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["etag"].startswith('"') and response.headers["last-modified"]


def test_if_none_match_with_the_current_etag_gets_304_without_a_body(client: TestClient) -> None:
    etag = client.get(ASSET).headers["etag"]
    for header in (etag, f'"other", W/{etag}', "*"):
        response = client.get(ASSET, headers={"If-None-Match": header})
        assert response.status_code == 304, header
        assert response.content == b"" and response.headers["etag"] == etag
        assert response.headers["cache-control"] == "no-cache"
    stale = client.get(ASSET, headers={"If-None-Match": '"not-this-version"'})
    assert stale.status_code == 200 and stale.content  # another version: the whole file
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2)
    both = client.get(ASSET, headers={"If-None-Match": '"old"', "If-Modified-Since": formatdate(usegmt=True)})
    assert both.status_code == 200


def test_if_modified_since_revalidates_by_date(client: TestClient) -> None:
    last_modified = client.get(ASSET).headers["last-modified"]
    assert client.get(ASSET, headers={"If-Modified-Since": last_modified}).status_code == 304
    older = formatdate(parsedate_to_datetime(last_modified).timestamp() - 3600, usegmt=True)
    response = client.get(ASSET, headers={"If-Modified-Since": older})
    assert response.status_code == 200 and response.content


def test_only_files_of_the_folder_are_served(client: TestClient) -> None:
    for path in ("/static/../../backend/settings.py", "/static/js/", "/static/nope.js", "/static/js/api.py"):
        assert client.get(path, headers={"If-None-Match": "*"}).status_code == 404, path
