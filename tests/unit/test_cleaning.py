"""clean_hour end to end on real files: LocalStorage landing and lake, Parquet read back."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake import layout
from lake.cleaning.hour import clean_hour
from lake.firehose import hour_prefix, object_key
from lake.ledger import manifest_of as manifest_key_of
from lake.ledger import output_name
from lake.pii import REDACTED, hash_key
from lake.settings import DEFAULTS, Settings
from lake.storage import LocalStorage
from lake.streams import load_streams
from tests.incremental_lake import ROBOT_COLUMNS, catalog_table

SPEC = load_streams()["robot_telemetry"]
HOUR = datetime(2026, 11, 21, 8, tzinfo=UTC)
PII_KEY = "unit-test-pii-key"

# The catalog table as the crawler would store it (only Columns matter to cleaning).
TABLE = catalog_table(
    "robot_telemetry",
    [
        *ROBOT_COLUMNS,
        ("count", "int"),
        ("big", "bigint"),
        ("ratio", "double"),
        ("ok", "boolean"),
        (
            "milking",
            "struct<yield_kg:double,duration_s:int,quarters:array<struct<quarter:string,yield_kg:double>>>",
        ),
        ("operator", "struct<name:string,email:string>"),
        ("tags", "array<string>"),
    ],
)


@pytest.fixture(autouse=True)
def _pii_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_HASH_KEY", PII_KEY)


def rec(eid: str, ts: str = "2026-11-21T08:10:00Z", **extra: Any) -> dict[str, Any]:
    return {"event_id": eid, "ts": ts, "robot_id": "R1", **extra}


def dumps(r: dict[str, Any]) -> str:
    return json.dumps(r, separators=(",", ":"))


def put(landing: LocalStorage, minute: int, oid: str, text: str, *, gz: bool = True) -> str:
    key = object_key(SPEC.name, HOUR.replace(minute=minute), object_id=oid)
    data = text.encode()
    landing.write(key, gzip.compress(data) if gz else data)
    return key


def run(
    landing: LocalStorage,
    lake: LocalStorage,
    ingested_at: datetime | None = None,
    full_refresh: bool = False,
    settings: Settings = DEFAULTS,
):
    objects = list(landing.list(hour_prefix(SPEC.name, HOUR)))
    return clean_hour(
        SPEC,
        TABLE,
        landing,
        lake,
        HOUR,
        objects,
        ingested_at=ingested_at,
        full_refresh=full_refresh,
        settings=settings,
    )


def out_name(key: str) -> str:
    return output_name(HOUR, key)


def manifest_of(landing: LocalStorage, lake: LocalStorage, key: str) -> dict[str, Any]:
    """The ledger entry of a landed object in its current version."""
    (info,) = [o for o in landing.list(key) if o.key == key]
    return json.loads(lake.read(manifest_key_of(SPEC.name, HOUR, info)))


def read_rows(lake: LocalStorage, key: str) -> list[dict[str, Any]]:
    return pq.read_table(lake.path(key)).to_pylist()


def lake_keys(lake: LocalStorage, prefix: str) -> list[str]:
    return [o.key for o in lake.list(prefix)]


def test_counts_balance_per_object_and_in_total(landing: LocalStorage, lake: LocalStorage) -> None:
    broken = '{"event_id":"bad","ts":"2026-11-21T08:1'
    text1 = (
        dumps(rec("a"))
        + dumps(rec("b"))
        + broken
        + dumps({"event_id": "no-ts", "robot_id": "R1"})
        + dumps(rec("a"))  # duplicate inside the object
        + dumps(rec("c"))
    )
    text2 = dumps(rec("b")) + dumps(rec("d"))  # b duplicates the first object
    k1 = put(landing, 1, "obj1", text1)
    k2 = put(landing, 2, "obj2", text2)

    report = run(landing, lake)

    # object 1: 6 records = 3 cleaned + 2 quarantined + 1 duplicate
    # object 2: 2 records = 1 cleaned + 0 quarantined + 1 duplicate
    assert (report.objects, report.records_in) == (2, 8)
    assert report.records_cleaned == 4
    assert report.records_quarantined == 2
    assert report.duplicates_dropped == 2
    assert report.records_in == (
        report.records_cleaned + report.records_quarantined + report.duplicates_dropped
    )
    assert report.unbalanced_objects == []
    assert report.bytes_in == len(landing.read(k1)) + len(landing.read(k2))

    for key, expected in ((k1, (6, 3, 2, 1)), (k2, (2, 1, 0, 1))):
        manifest = manifest_of(landing, lake, key)
        got = (
            manifest["records_in"],
            manifest["records_cleaned"],
            manifest["records_quarantined"],
            manifest["duplicates_dropped"],
        )
        assert got == expected
        assert got[0] == got[1] + got[2] + got[3]

    rows1 = read_rows(lake, f"cleaned/{SPEC.name}/dt=2026-11-21/{out_name(k1)}")
    rows2 = read_rows(lake, f"cleaned/{SPEC.name}/dt=2026-11-21/{out_name(k2)}")
    assert [r["event_id"] for r in rows1] == ["a", "b", "c"]
    assert [r["event_id"] for r in rows2] == ["d"]
    assert [r["_position"] for r in rows1] == [0, 1, 5]
    assert {r["_source_key"] for r in rows1} == {k1}
    # across all cleaned files: every event id once
    total = duckdb.sql(
        f"SELECT count(*), count(DISTINCT event_id) FROM read_parquet('{lake.root}/cleaned/**/*.parquet')"
    ).fetchall()
    assert total == [(4, 4)]


def test_typed_flattened_masked_columns(landing: LocalStorage, lake: LocalStorage) -> None:
    email = "Jan.Jansen@dairy017.example"
    quarters = [{"quarter": "lf", "yield_kg": 3.1}, {"quarter": "rf", "yield_kg": 2.9}]
    record = rec(
        "e1",
        ts="2026-11-21T09:15:30.250+01:00",  # 08:15:30.25 UTC
        count=7,
        big=2**40,
        ratio=3,  # an int where a double is declared: widened, not refused
        ok=True,
        milking={"yield_kg": 12.5, "duration_s": 410, "quarters": quarters},
        operator={"name": "Jan Jansen", "email": email},
        tags=["x", "y"],
    )
    sparse = rec("e2", ts="2026-11-21T08:20:00")  # naive means UTC; other columns missing
    key = put(landing, 3, "typed", dumps(record) + "\n" + dumps(sparse))

    run(landing, lake)

    table = pq.read_table(lake.path(f"cleaned/{SPEC.name}/dt=2026-11-21/{out_name(key)}"))
    schema = table.schema
    assert schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert schema.field("count").type == pa.int32()
    assert schema.field("big").type == pa.int64()
    assert schema.field("ratio").type == pa.float64()
    assert schema.field("ok").type == pa.bool_()
    assert schema.field("milking_yield_kg").type == pa.float64()
    assert schema.field("milking_duration_s").type == pa.int32()
    assert schema.field("milking_quarters").type == pa.string()
    assert schema.field("tags").type == pa.string()
    assert schema.field("operator_email").type == pa.string()
    assert schema.field("operator_name").type == pa.string()
    assert "milking" not in schema.names and "operator" not in schema.names
    assert {"_source_key", "_position", "_arrival_hour", "_ingested_at"} <= set(schema.names)

    first, second = table.to_pylist()
    assert first["ts"] == datetime(2026, 11, 21, 8, 15, 30, 250000, tzinfo=UTC)
    assert first["count"] == 7
    assert first["big"] == 2**40
    assert first["ratio"] == 3.0
    assert first["ok"] is True
    assert first["milking_yield_kg"] == 12.5
    assert first["milking_duration_s"] == 410
    assert json.loads(first["milking_quarters"]) == quarters
    assert json.loads(first["tags"]) == ["x", "y"]
    assert first["_arrival_hour"] == HOUR

    assert hash_key() == PII_KEY.encode()
    expected_hash = hmac.new(PII_KEY.encode(), email.encode(), hashlib.sha256).hexdigest()
    assert first["operator_email"] == expected_hash
    assert len(first["operator_email"]) == 64
    assert first["operator_name"] == REDACTED
    # nothing of the PII survives anywhere in the file
    raw = lake.read(f"cleaned/{SPEC.name}/dt=2026-11-21/{out_name(key)}")
    assert b"Jansen" not in raw and b"dairy017" not in raw

    assert second["ts"] == datetime(2026, 11, 21, 8, 20, tzinfo=UTC)
    for col in (
        "count",
        "big",
        "ratio",
        "ok",
        "milking_yield_kg",
        "operator_email",
        "operator_name",
        "tags",
    ):
        assert second[col] is None, col


def test_same_email_hashes_identically_across_records(
    landing: LocalStorage, lake: LocalStorage
) -> None:
    op = {"name": "A", "email": "a@example.com"}
    key = put(landing, 4, "ops", dumps(rec("x", operator=op)) + dumps(rec("y", operator=op)))
    run(landing, lake)
    rows = read_rows(lake, f"cleaned/{SPEC.name}/dt=2026-11-21/{out_name(key)}")
    expected = hmac.new(hash_key(), b"a@example.com", hashlib.sha256).hexdigest()
    assert [r["operator_email"] for r in rows] == [expected, expected]


def test_duplicates_across_two_objects_are_dropped(
    landing: LocalStorage, lake: LocalStorage
) -> None:
    ids1 = ["a", "b", "c"]
    ids2 = ["c", "d", "a", "e"]
    k1 = put(landing, 5, "first", "".join(dumps(rec(i)) for i in ids1))
    k2 = put(landing, 6, "second", "".join(dumps(rec(i)) for i in ids2))
    report = run(landing, lake)
    assert report.duplicates_dropped == len(set(ids1) & set(ids2))
    assert report.records_cleaned == len(set(ids1) | set(ids2))
    rows2 = read_rows(lake, f"cleaned/{SPEC.name}/dt=2026-11-21/{out_name(k2)}")
    assert [r["event_id"] for r in rows2] == ["d", "e"]
    rows1 = read_rows(lake, f"cleaned/{SPEC.name}/dt=2026-11-21/{out_name(k1)}")
    assert [r["event_id"] for r in rows1] == ids1


def test_late_record_lands_under_its_event_date(landing: LocalStorage, lake: LocalStorage) -> None:
    late_ts = "2026-11-19T23:59:59Z"
    key = put(landing, 7, "late", dumps(rec("now")) + dumps(rec("late", ts=late_ts)))
    report = run(landing, lake)
    assert report.event_dates == {"2026-11-19", "2026-11-21"}
    late_rows = read_rows(lake, f"cleaned/{SPEC.name}/dt=2026-11-19/{out_name(key)}")
    assert [r["event_id"] for r in late_rows] == ["late"]
    assert late_rows[0]["_arrival_hour"] == HOUR
    now_rows = read_rows(lake, f"cleaned/{SPEC.name}/dt=2026-11-21/{out_name(key)}")
    assert [r["event_id"] for r in now_rows] == ["now"]
    assert sorted(lake_keys(lake, "cleaned/")) == sorted(report.files_written)


def test_malformed_records_are_quarantined_with_context(
    landing: LocalStorage, lake: LocalStorage
) -> None:
    broken = '{"event_id":"t","ts":"2026-11-2'
    no_id = dumps({"ts": "2026-11-21T08:00:00Z", "robot_id": "R1"})
    bad_time = dumps(rec("bt", ts="yesterday"))
    not_object = "[1,2,3]"
    text = dumps(rec("ok1")) + broken + no_id + bad_time + not_object + dumps(rec("ok2"))
    key = put(landing, 8, "mixed", text)
    report = run(landing, lake, ingested_at=HOUR + timedelta(hours=1))
    assert report.records_quarantined == 4
    assert report.records_cleaned == 2

    qkey = f"quarantine/{SPEC.name}/dt=2026-11-21/{out_name(key)}"
    assert lake_keys(lake, "quarantine/") == [qkey]
    rows = read_rows(lake, qkey)
    by_pos = {r["position"]: r for r in rows}
    assert sorted(by_pos) == [1, 2, 3, 4]
    assert by_pos[1]["raw_text"] == broken
    assert "invalid JSON" in by_pos[1]["reason"]
    assert by_pos[2]["raw_text"] == no_id
    assert "event_id" in by_pos[2]["reason"]
    assert by_pos[3]["raw_text"] == bad_time
    assert "yesterday" in by_pos[3]["reason"]
    assert by_pos[4]["raw_text"] == not_object
    assert "array" in by_pos[4]["reason"]
    assert {r["source_key"] for r in rows} == {key}
    assert {r["arrival_hour"] for r in rows} == {HOUR}
    assert {r["quarantined_at"] for r in rows} == {HOUR + timedelta(hours=1)}


def test_quarantine_folder_uses_arrival_date_not_event_date(
    landing: LocalStorage, lake: LocalStorage
) -> None:
    key = put(landing, 9, "oldbad", dumps(rec("x", ts="2026-11-01T00:00:00Z", count="NaN")))
    run(landing, lake)
    assert lake_keys(lake, "quarantine/") == [
        f"quarantine/{SPEC.name}/dt=2026-11-21/{out_name(key)}"
    ]
    assert lake_keys(lake, "cleaned/") == []


def test_unreadable_object_is_quarantined_whole(landing: LocalStorage, lake: LocalStorage) -> None:
    good = put(landing, 10, "good", dumps(rec("g")))
    bad_key = object_key(SPEC.name, HOUR.replace(minute=11), object_id="trunc")
    bad_bytes = gzip.compress(("".join(dumps(rec(f"t{i}")) for i in range(50))).encode())[:40]
    landing.write(bad_key, bad_bytes)

    report = run(landing, lake)
    assert report.objects == 2
    assert report.records_in == 2  # the good record + the whole bad object counted once
    assert report.records_cleaned == 1
    assert report.records_quarantined == 1
    assert report.unbalanced_objects == []
    rows = read_rows(lake, f"quarantine/{SPEC.name}/dt=2026-11-21/{out_name(bad_key)}")
    assert len(rows) == 1
    assert rows[0]["position"] == -1
    assert rows[0]["source_key"] == bad_key
    assert "unreadable" in rows[0]["reason"] and "gzip" in rows[0]["reason"]
    assert rows[0]["raw_text"]
    assert lake_keys(lake, "cleaned/") == [f"cleaned/{SPEC.name}/dt=2026-11-21/{out_name(good)}"]


def test_value_that_does_not_cast_is_quarantined_naming_the_column(
    landing: LocalStorage, lake: LocalStorage
) -> None:
    bad_int = dumps(rec("i", count="seven"))
    bad_nested = dumps(rec("n", milking={"yield_kg": "lots", "duration_s": 1}))
    too_big = dumps(rec("o", count=2**31))
    bad_bool = dumps(rec("b", ok="yes"))
    key = put(
        landing,
        12,
        "casts",
        dumps(rec("fine", count=1)) + bad_int + bad_nested + too_big + bad_bool,
    )
    report = run(landing, lake)
    assert report.records_cleaned == 1
    assert report.records_quarantined == 4
    rows = {
        r["position"]: r
        for r in read_rows(lake, f"quarantine/{SPEC.name}/dt=2026-11-21/{out_name(key)}")
    }
    assert "column count" in rows[1]["reason"]
    assert rows[1]["raw_text"] == bad_int
    assert "column milking_yield_kg" in rows[2]["reason"]
    assert "column count" in rows[3]["reason"]
    assert "column ok" in rows[4]["reason"]


def test_rerun_writes_the_same_files_and_rows(landing: LocalStorage, lake: LocalStorage) -> None:
    put(
        landing, 13, "r1", dumps(rec("a")) + dumps(rec("late", ts="2026-11-20T10:00:00Z")) + "{oops"
    )
    put(landing, 14, "r2", dumps(rec("a")) + dumps(rec("b", count=3)))
    landing.write(
        object_key(SPEC.name, HOUR.replace(minute=15), object_id="junk"), b"\xff\xfe junk"
    )

    first = run(landing, lake, ingested_at=datetime(2026, 11, 21, 9, tzinfo=UTC))
    files_first = lake_keys(lake, "")
    data_keys = [k for k in files_first if k.startswith(("cleaned/", "quarantine/"))]
    contents_first = {
        k: pq.read_table(lake.path(k)).drop_columns(
            ["_ingested_at"] if k.startswith("cleaned/") else ["quarantined_at"]
        )
        for k in data_keys
    }

    second = run(
        landing, lake, ingested_at=datetime(2026, 11, 21, 10, tzinfo=UTC), full_refresh=True
    )
    # the same files, besides the run's delta of the hour's running totals (lake.hour_totals)
    # and its dedup keys, saved in run files beside the hour's (lake.cleaning.run_keys)
    totals = layout.hour_totals_doc(SPEC.name, HOUR).removesuffix(".json") + "/"
    runs = [
        layout.dedup_run_keys_folder(SPEC.name, HOUR.date() - timedelta(days=d), HOUR)
        for d in (0, 1)
    ]
    state = (totals, *runs)
    assert [k for k in lake_keys(lake, "") if not k.startswith(state)] == [
        k for k in files_first if not k.startswith(state)
    ]
    assert sorted(second.files_written) == sorted(first.files_written)
    for k in data_keys:
        table = pq.read_table(lake.path(k))
        dropped = "_ingested_at" if k.startswith("cleaned/") else "quarantined_at"
        assert table.drop_columns([dropped]).equals(contents_first[k]), k
        stamps = set(table.column(dropped).to_pylist())
        assert stamps == {datetime(2026, 11, 21, 10, tzinfo=UTC)}
    assert (
        first.records_in,
        first.records_cleaned,
        first.records_quarantined,
        first.duplicates_dropped,
    ) == (
        second.records_in,
        second.records_cleaned,
        second.records_quarantined,
        second.duplicates_dropped,
    )


def test_rerun_removes_outputs_no_longer_produced(
    landing: LocalStorage, lake: LocalStorage
) -> None:
    key = put(landing, 16, "shrink", dumps(rec("a", ts="2026-11-20T08:00:00Z")) + dumps(rec("b")))
    run(landing, lake)
    assert len(lake_keys(lake, "cleaned/")) == 2
    # the object is replaced by one whose only record is on the arrival date
    landing.write(key, gzip.compress(dumps(rec("b")).encode()))
    run(landing, lake, full_refresh=True)
    assert lake_keys(lake, "cleaned/") == [f"cleaned/{SPEC.name}/dt=2026-11-21/{out_name(key)}"]


def test_keys_with_quotes_dots_spaces_and_sql_become_safe_columns(
    landing: LocalStorage, lake: LocalStorage
) -> None:
    evil = 'a"; drop table x; --'
    record = rec("k1", **{evil: 1, "dotted.key": "d", "with space": True, "Mixed": {"In-ner": 2.5}})
    put(landing, 1, "keys", dumps(record))
    report = run(landing, lake)
    assert report.records_cleaned == 1
    [key] = [o.key for o in lake.list("cleaned/")]
    [row] = read_rows(lake, key)
    assert row["a___drop_table_x____"] == 1
    assert row["dotted_key"] == "d" and row["with_space"] is True and row["mixed_in_ner"] == 2.5
    # The names are safe identifiers: DuckDB reads them without any quoting.
    got = duckdb.sql(
        f"SELECT a___drop_table_x____, mixed_in_ner FROM read_parquet('{lake.path(key)}')"
    ).fetchall()
    assert got == [(1, 2.5)]


def test_a_second_run_processes_only_new_objects(landing: LocalStorage, lake: LocalStorage) -> None:
    put(landing, 1, "first", dumps(rec("x1")) + dumps(rec("x2")))
    first = run(landing, lake)
    assert (first.objects, first.objects_skipped, first.records_cleaned) == (1, 0, 2)
    put(landing, 2, "second", dumps(rec("x2")) + dumps(rec("x3")))  # x2 was written by run 1
    second = run(landing, lake)
    assert (second.objects, second.objects_skipped) == (1, 1)
    assert (second.records_in, second.records_cleaned, second.duplicates_dropped) == (2, 1, 1)
    ids = sorted(r["event_id"] for k in lake_keys(lake, "cleaned/") for r in read_rows(lake, k))
    assert ids == ["x1", "x2", "x3"]


def test_duplicates_against_earlier_hours_within_the_allowed_lateness(
    landing: LocalStorage, lake: LocalStorage
) -> None:
    put(landing, 1, "h8", dumps(rec("d1", ts="2026-11-21T07:59:00Z")))
    run(landing, lake)
    later = HOUR.replace(hour=9)
    key = object_key(SPEC.name, later.replace(minute=3), object_id="h9")
    landing.write(
        key,
        gzip.compress((dumps(rec("d1", ts="2026-11-21T07:59:00Z")) + dumps(rec("d2"))).encode()),
    )
    report = clean_hour(
        SPEC, TABLE, landing, lake, later, list(landing.list(hour_prefix(SPEC.name, later)))
    )
    assert (report.records_in, report.records_cleaned, report.duplicates_dropped) == (2, 1, 1)


def _reasons(lake: LocalStorage) -> dict[int, str]:
    rows = [r for k in lake_keys(lake, "quarantine/") for r in read_rows(lake, k)]
    return {r["position"]: r["reason"] for r in rows}


def test_invalid_utf8_and_binary_junk_are_quarantined_whole(
    landing: LocalStorage, lake: LocalStorage
) -> None:
    put(landing, 1, "good", dumps(rec("ok")))
    landing.write(
        object_key(SPEC.name, HOUR.replace(minute=2), object_id="latin1"),
        gzip.compress('{"event_id":"é"}'.encode("latin-1")),
    )
    landing.write(
        object_key(SPEC.name, HOUR.replace(minute=3), object_id="bin"), bytes(range(256)) * 4
    )
    report = run(landing, lake)
    assert (report.records_in, report.records_cleaned, report.records_quarantined) == (3, 1, 2)
    rows = [r for k in lake_keys(lake, "quarantine/") for r in read_rows(lake, k)]
    assert {r["position"] for r in rows} == {-1}
    assert sorted(r["reason"] for r in rows) == [
        "unreadable_object: binary content: NUL byte at byte 0",  # bytes 0..255
        "unreadable_object: not valid UTF-8 at byte 13: b'\\xe9\"}'",
    ]


def test_a_20_mb_record_is_cleaned(landing: LocalStorage, lake: LocalStorage) -> None:
    big = rec("big", tags=["x" * 1000] * 20_000)  # ~20 MB of JSON
    put(landing, 1, "big", dumps(big) + dumps(rec("small")))
    report = run(landing, lake)
    assert (report.records_cleaned, report.records_quarantined) == (2, 0)
    rows = {r["event_id"]: r for k in lake_keys(lake, "cleaned/") for r in read_rows(lake, k)}
    assert len(rows["big"]["tags"]) > 20_000_000 and json.loads(rows["big"]["tags"]) == big["tags"]


def test_64_levels_of_nesting_become_one_column(landing: LocalStorage, lake: LocalStorage) -> None:
    deep: dict[str, Any] = {"leaf": 7}
    for level in range(63):
        deep = {f"l{level}": deep}
    put(landing, 1, "deep", dumps(rec("d", deep=deep)))
    run(landing, lake)
    [key] = lake_keys(lake, "cleaned/")
    [row] = read_rows(lake, key)
    full = "deep_" + "_".join(f"l{level}" for level in reversed(range(63))) + "_leaf"
    # Longer than Redshift's 127 bytes: the head of the name and a hash of the key path.
    [name] = [c for c in row if c.startswith("deep_")]
    assert len(full) > 127 and len(name) == SPEC.limits.max_name_bytes == 127
    assert name[:118] == full[:118] and name[118] == "_"
    assert row[name] == 7


def test_nan_and_infinity_literals_are_quarantined(
    landing: LocalStorage, lake: LocalStorage
) -> None:
    text = dumps(rec("n0", ratio=0.5)) + '{"event_id":"n1","ts":"2026-11-21T08:10:00Z","ratio":NaN}'
    text += '{"event_id":"n2","ts":"2026-11-21T08:10:00Z","ratio":-Infinity}'
    put(landing, 1, "nan", text)
    report = run(landing, lake)
    assert (report.records_cleaned, report.records_quarantined) == (1, 2)
    reasons = _reasons(lake)
    assert reasons[1] == "column ratio: cannot cast NaN to double"
    assert reasons[2] == "column ratio: cannot cast -Infinity to double"


def test_a_key_repeated_inside_one_record_is_quarantined(
    landing: LocalStorage, lake: LocalStorage
) -> None:
    put(
        landing,
        1,
        "dupkey",
        '{"event_id":"r1","ts":"2026-11-21T08:10:00Z","count":1,"count":2}' + dumps(rec("r2")),
    )
    report = run(landing, lake)
    assert (report.records_cleaned, report.records_quarantined) == (1, 1)
    assert _reasons(lake) == {0: "duplicate key in record: count"}


def test_empty_object_and_whitespace_only_records(
    landing: LocalStorage, lake: LocalStorage
) -> None:
    landing.write(
        object_key(SPEC.name, HOUR.replace(minute=1), object_id="empty"), gzip.compress(b"")
    )
    put(landing, 2, "spaces", "   \n\t  \n")
    put(landing, 3, "ws-between", dumps(rec("w1")) + "\n   \n" + dumps(rec("w2")))
    report = run(landing, lake)
    # Whitespace carries no record: nothing to clean, nothing lost, and the ledger has them.
    assert (report.objects, report.records_in, report.records_cleaned) == (3, 2, 2)
    assert report.unbalanced_objects == []
    assert run(landing, lake).objects_skipped == 3


def test_cloudtrail_records_that_are_not_objects_are_quarantined(tmp_path: Path) -> None:
    spec = load_streams()["cloudtrail"]
    landing, lake = LocalStorage(tmp_path / "l"), LocalStorage(tmp_path / "k")
    good = {"eventID": "c1", "eventTime": "2026-11-21T08:01:02Z", "eventName": "ConsoleLogin"}
    doc = {"Records": [good, "not a record", {"eventID": "c2", "eventName": "GetObject"}]}
    key = object_key(spec.name, HOUR.replace(minute=1), object_id="ct")
    landing.write(key, gzip.compress(json.dumps(doc).encode()))
    report = clean_hour(spec, None, landing, lake, HOUR, list(landing.list(f"{spec.name}/")))
    assert (report.records_in, report.records_cleaned, report.records_quarantined) == (3, 1, 2)
    rows = [r for k in lake_keys(lake, "quarantine/") for r in read_rows(lake, k)]
    assert {r["position"]: r["reason"] for r in rows} == {
        1: "record is a JSON string, not an object",
        2: "missing event time field 'eventTime'",
    }
    assert rows[0]["raw_text"] == '"not a record"'


def test_cloudtrail_record_with_a_key_twice_is_quarantined_whole(tmp_path: Path) -> None:
    """As in the other formats: neither value is kept silently (Python's unwrapping kept
    the last one and lost the first)."""
    spec = load_streams()["cloudtrail"]
    landing, lake = LocalStorage(tmp_path / "l"), LocalStorage(tmp_path / "k")
    twice = '{"eventID":"c1","eventTime":"2026-11-21T08:01:02Z","eventName":"A","eventName":"B"}'
    good = '{"eventID":"c2","eventTime":"2026-11-21T08:01:03Z","eventName":"C"}'
    key = object_key(spec.name, HOUR.replace(minute=1), object_id="ct")
    landing.write(key, gzip.compress(('{"Records":[' + twice + "," + good + "]}").encode()))
    report = clean_hour(spec, None, landing, lake, HOUR, list(landing.list(f"{spec.name}/")))
    assert (report.records_in, report.records_cleaned, report.records_quarantined) == (2, 1, 1)
    [row] = [r for k in lake_keys(lake, "quarantine/") for r in read_rows(lake, k)]
    assert (row["position"], row["reason"]) == (0, "duplicate key in record: eventName")
    assert row["raw_text"] == twice
    cleaned = [r for k in lake_keys(lake, "cleaned/") for r in read_rows(lake, k)]
    assert [(r["eventid"], r["eventname"]) for r in cleaned] == [("c2", "C")]


def test_duplicates_across_chunks_of_one_run_are_dropped(
    landing: LocalStorage, lake: LocalStorage
) -> None:
    one_object_a_pass = replace(DEFAULTS, clean_chunk_bytes=1)
    put(landing, 1, "c1", dumps(rec("k1")) + dumps(rec("k2")))
    put(landing, 2, "c2", dumps(rec("k2")) + dumps(rec("k3")))
    put(landing, 3, "c3", dumps(rec("k3", extra_field={"x": 1})))
    report = run(landing, lake, settings=one_object_a_pass)
    assert (report.records_in, report.records_cleaned, report.duplicates_dropped) == (5, 3, 2)
    assert report.columns_not_in_catalog == {"added": ["extra_field"]}
    ids = sorted(r["event_id"] for k in lake_keys(lake, "cleaned/") for r in read_rows(lake, k))
    assert ids == ["k1", "k2", "k3"]


def test_a_record_larger_than_duckdbs_reader_takes_goes_the_python_way(
    landing: LocalStorage, lake: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lake.cleaning import staging

    # DuckDB's reader takes at least 16 MB and buffers twice the limit: 40 MB is over it.
    monkeypatch.setattr(staging, "MAX_RECORD_BYTES", 16 << 20)
    key = put(landing, 1, "huge", dumps(rec("h1", tags=["y" * 40_000_000])) + dumps(rec("h2")))
    spec = SPEC.with_limits(max_record_bytes=48 << 20)  # the stream allows 40 MB
    objects = list(landing.list(hour_prefix(SPEC.name, HOUR)))
    report = clean_hour(spec, TABLE, landing, lake, HOUR, objects)
    assert (report.records_cleaned, report.records_quarantined) == (2, 0)
    assert report.objects_split_in_python == 1
    # Only this object was refused by DuckDB's reader and split in Python, without loss.
    rows = read_rows(lake, f"cleaned/{SPEC.name}/dt=2026-11-21/{out_name(key)}")
    assert [r["event_id"] for r in rows] == ["h1", "h2"] and [r["_position"] for r in rows] == [
        0,
        1,
    ]


def many_objects(landing: LocalStorage, objects: int, per_object: int) -> dict[str, list[str]]:
    """Objects of concatenated records with one late record each; event ids by object key."""
    written = {}
    for o in range(objects):
        ids = [f"o{o}-r{r}" for r in range(per_object)]
        late = per_object // 2  # one record of the day before, in the middle of the object
        body = "".join(
            dumps(rec(eid, ts="2026-11-20T23:59:00Z" if r == late else "2026-11-21T08:10:00Z"))
            for r, eid in enumerate(ids)
        )
        written[put(landing, o % 60, f"m{o:03d}", body)] = ids
    return written


def test_each_file_holds_one_objects_records_in_their_order(
    landing: LocalStorage, lake: LocalStorage
) -> None:
    written = many_objects(landing, objects=12, per_object=2_000)
    # several objects a pass, 3+ passes
    report = run(landing, lake, settings=replace(DEFAULTS, clean_chunk_bytes=40_000))

    assert report.records_cleaned == 12 * 2_000
    for key, ids in written.items():
        late = ids[len(ids) // 2]
        today = read_rows(lake, f"cleaned/{SPEC.name}/dt=2026-11-21/{out_name(key)}")
        before = read_rows(lake, f"cleaned/{SPEC.name}/dt=2026-11-20/{out_name(key)}")
        assert [r["event_id"] for r in today] == [i for i in ids if i != late]
        assert [r["_position"] for r in today] == [p for p in range(len(ids)) if p != len(ids) // 2]
        assert {r["_source_key"] for r in today} == {key}
        assert [(r["event_id"], r["_position"]) for r in before] == [(late, len(ids) // 2)]


def test_objects_handed_over_in_pieces_are_sorted_and_rewritten(
    landing: LocalStorage, lake: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lake.cleaning import writing
    from lake.parquet_writing import GroupsNotConsecutive

    calls = []

    def first_call_fails(reader: pa.RecordBatchReader, columns: list[str], write: Any) -> Any:
        calls.append(columns)
        if len(calls) == 1:
            raise GroupsNotConsecutive("simulated")
        return real(reader, columns, write)

    real = writing.write_groups
    monkeypatch.setattr(writing, "write_groups", first_call_fails)
    written = many_objects(landing, objects=3, per_object=50)
    report = run(landing, lake)

    assert len(calls) == 2 and report.records_cleaned == 150
    for key, ids in written.items():
        today = read_rows(lake, f"cleaned/{SPEC.name}/dt=2026-11-21/{out_name(key)}")
        assert [r["event_id"] for r in today] == [i for i in ids if i != ids[25]]


INNER_NAMES = ["_jt", "_l", "_j", "_shape", "_reason", "_dt", "_key_hi", "_key_lo", "_key_hash"]


def test_fields_named_like_the_typing_querys_own_columns_keep_their_values(
    landing: LocalStorage, lake: LocalStorage
) -> None:
    """Top-level keys spelled like the columns the typing query works with (`_jt`,
    `_reason`, `_shape`...) are fields like any other: cleaned with their own values (a
    key `_jt` came out as 'object', `_reason` gave the typed table a second column)."""
    fields = {name: f"value of {name}" for name in INNER_NAMES + ["_object", "_t", "rid"]}
    put(landing, 1, "n1", dumps(rec("k1", **fields)))
    report = run(landing, lake)
    assert (report.records_cleaned, report.records_quarantined) == (1, 0)
    [row] = [r for k in lake_keys(lake, "cleaned/") for r in read_rows(lake, k)]
    assert set(fields.values()) <= set(row.values())
    assert row["event_id"] == "k1"


def test_a_crawled_table_names_those_fields_apart_from_the_querys_columns(
    landing: LocalStorage, lake: LocalStorage
) -> None:
    from lake.catalog_store import Catalog
    from lake.crawler import crawl_objects

    fields = {name: f"value of {name}" for name in INNER_NAMES}
    put(landing, 1, "n1", dumps(rec("k1", **fields)))
    objects = list(landing.list(hour_prefix(SPEC.name, HOUR)))
    catalog = Catalog(lake, "unit")
    crawl_objects(SPEC, catalog, landing, objects)
    report = clean_hour(SPEC, catalog.get_table(SPEC.name), landing, lake, HOUR, objects)
    assert (report.records_cleaned, report.records_quarantined) == (1, 0)
    [row] = [r for k in lake_keys(lake, "cleaned/") for r in read_rows(lake, k)]
    assert set(fields.values()) <= set(row.values())
