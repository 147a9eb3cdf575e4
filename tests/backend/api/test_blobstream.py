"""`single_range`: the one-range `Range` headers a download may carry, and those it may ignore (RFC 9110)."""

from __future__ import annotations

import pytest

from backend.files.blobstream import single_range


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 100, None),
        ("bytes=0-0", 100, (0, 0)),
        ("bytes=10-19", 100, (10, 19)),
        ("BYTES = 10 - 19", 100, (10, 19)),
        ("bytes=90-", 100, (90, 99)),
        ("bytes=90-1000", 100, (90, 99)),
        ("bytes=-10", 100, (90, 99)),
        ("bytes=-1000", 100, (0, 99)),
        ("bytes=100-", 100, "unsatisfiable"),
        ("bytes=-0", 100, "unsatisfiable"),
        ("bytes=0-", 0, "unsatisfiable"),
        ("bytes=20-10", 100, None),  # last before first: invalid, ignored
        ("bytes=0-1,5-6", 100, None),  # several ranges: the whole blob
        ("items=0-1", 100, None),
        ("bytes=-", 100, None),
        ("bytes=a-b", 100, None),
    ],
)
def test_single_range(header: str | None, size: int, expected: object) -> None:
    assert single_range(header, size) == expected
