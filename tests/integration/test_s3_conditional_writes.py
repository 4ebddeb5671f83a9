"""S3 conditional writes (If-None-Match / If-Match) over moto's HTTP endpoint."""

from __future__ import annotations

import json

import pytest

from lake.storage import PreconditionFailed, S3Storage, open_storage
from tests.unit.test_conditional_writes import _racing_appends

pytestmark = pytest.mark.s3


def test_s3_create_only_and_replace_if_match(s3_bucket: str) -> None:
    s = open_storage(f"s3://{s3_bucket}/cas")
    assert isinstance(s, S3Storage)
    assert s.read_versioned("k") is None
    first = s.write_if("k", b"v1", None)
    with pytest.raises(PreconditionFailed):
        s.write_if("k", b"again", None)
    second = s.write_if("k", b"v2", first)
    with pytest.raises(PreconditionFailed):
        s.write_if("k", b"v3", first)
    with pytest.raises(PreconditionFailed):
        s.write_if("missing", b"v", first)
    assert s.read_versioned("k") == (b"v2", second)


def test_s3_listing_carries_the_etag(s3_bucket: str) -> None:
    s = open_storage(f"s3://{s3_bucket}/etag")
    tag = s.write_if("a", b"x", None)
    (info,) = s.list()
    assert info.etag == tag


def test_racing_writers_never_lose_an_update_on_s3(s3_bucket: str) -> None:
    s = open_storage(f"s3://{s3_bucket}/race")
    _racing_appends(s, "state/list.json", writers=3, each=6)
    items = json.loads(s.read("state/list.json"))
    assert sorted(items) == sorted(w * 1000 + i for w in range(3) for i in range(6))
