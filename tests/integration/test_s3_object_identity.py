"""Object identity on S3 over HTTP (moto on 127.0.0.1): keys sharing a last part, glob
characters and an object overwritten under its key (a new ETag)."""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime

import pyarrow.parquet as pq
import pytest

from lake.cleaning.hour import clean_hour
from lake.firehose import hour_prefix
from lake.ledger import read_ledger
from lake.storage import Storage, open_storage
from lake.streams import load_streams

pytestmark = pytest.mark.s3
SPEC = load_streams()["robot_telemetry"]
HOUR = datetime(2026, 11, 21, 8, tzinfo=UTC)
FOLDER = hour_prefix(SPEC.name, HOUR)


@pytest.fixture(autouse=True)
def _pii_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_HASH_KEY", "s3-test-pii-key")


def _records(prefix: str, n: int) -> bytes:
    return gzip.compress(
        "".join(
            json.dumps({"event_id": f"{prefix}-{i}", "ts": "2026-11-21T08:10:00Z"})
            for i in range(n)
        ).encode()
    )


def _ids(lake: Storage, prefix: str) -> list[str]:
    ids = []
    for info in lake.list(prefix):
        ids += pq.read_table(io.BytesIO(lake.read(info.key)))["event_id"].to_pylist()
    return sorted(ids)


def _clean(landing: Storage, lake: Storage):
    return clean_hour(SPEC, None, landing, lake, HOUR, list(landing.list(FOLDER)))


def test_full_keys_glob_characters_and_new_etags_on_s3(s3_bucket: str) -> None:
    landing = open_storage(f"s3://{s3_bucket}/landing")
    lake = open_storage(f"s3://{s3_bucket}/lake")
    keys = [f"{FOLDER}x.gz", f"{FOLDER}retry/x.gz", f"{FOLDER}x", f"{FOLDER}a*[ab]?.gz"]
    for n, key in enumerate(keys):
        landing.write(key, _records(f"k{n}", 100))
    first = _clean(landing, lake)
    assert (first.records_in, first.records_cleaned) == (400, 400)
    assert len(set(_ids(lake, f"cleaned/{SPEC.name}/"))) == 400
    keys_state = [
        pq.read_table(io.BytesIO(lake.read(o.key))) for o in lake.list(f"_state/keys/{SPEC.name}/")
    ]
    assert sum(t.num_rows for t in keys_state) == 400

    landing.write(keys[1], _records("v2", 700))  # overwritten: a new ETag
    second = _clean(landing, lake)
    assert (second.objects, second.objects_skipped, second.records_cleaned) == (1, 3, 700)
    ids = _ids(lake, f"cleaned/{SPEC.name}/")
    assert len(ids) == 1000 and not any(i.startswith("k1-") for i in ids)
    assert all(len(v) == 1 for v in read_ledger(lake, SPEC.name, HOUR).versions.values())
    assert _clean(landing, lake).objects == 0
