"""Records built to break a stream (issue 10, section 1): each one ends in quarantine with
a reason code, or in a column of its own, while the rest of its hour is cleaned, every
record is accounted for, and the NEXT hour of the stream still cleans. Crawler and
cleaning run for real, on real folders, with Parquet read back."""

from __future__ import annotations

import dataclasses
import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from lake.catalog_store import Catalog, stored_schema
from lake.cleaning.columns import columns_from_table
from lake.cleaning.hour import clean_hour
from lake.cleaning.report import HourReport
from lake.column_names import PARAMETER
from lake.crawler import crawl_objects
from lake.firehose import hour_prefix, object_key
from lake.storage import LocalStorage
from lake.streams import RecordLimits, StreamConfigError, StreamSpec, load_streams
from tests.incremental_lake import catalog_table

ROBOT = load_streams()["robot_telemetry"]
H8 = datetime(2026, 11, 21, 8, tzinfo=UTC)


class Lake:
    """A landing folder, a lake folder and the catalog: crawl then clean, hour by hour."""

    def __init__(self, root: Path, spec: StreamSpec = ROBOT) -> None:
        self.spec = spec
        self.landing = LocalStorage(root / "landing")
        self.lake = LocalStorage(root / "lake")
        self.catalog = Catalog(self.lake, "firehose_raw")

    def land(self, hour: datetime, records: list[str], oid: str = "o") -> str:
        key = object_key(self.spec.name, hour.replace(minute=5), object_id=oid)
        sep = "\n" if self.spec.format == "ndjson" else ""
        self.landing.write(key, gzip.compress(sep.join(records).encode()))
        return key

    def hour(self, hour: datetime, records: list[str], crawl: bool = True) -> HourReport:
        self.land(hour, records, oid=f"o{hour:%H}")
        objects = list(self.landing.list(hour_prefix(self.spec.name, hour)))
        if crawl:
            self.crawl = crawl_objects(self.spec, self.catalog, self.landing, objects)
        table = self.catalog.get_table(self.spec.name)
        report = clean_hour(self.spec, table, self.landing, self.lake, hour, objects)
        assert report.unbalanced_objects == []
        assert report.records_in == (
            report.records_cleaned + report.records_quarantined + report.duplicates_dropped
        )
        return report

    def rows(self, prefix: str, hour: datetime | None = None) -> list[dict[str, Any]]:
        out = []
        for info in self.lake.list(prefix):
            if hour is None or f"/{hour:%Y%m%dT%H}-" in info.key:
                out += pq.read_table(self.lake.path(info.key)).to_pylist()
        return out

    def cleaned(self, hour: datetime | None = None) -> list[dict[str, Any]]:
        return self.rows(f"cleaned/{self.spec.name}/", hour)

    def quarantined(self) -> list[dict[str, Any]]:
        return self.rows(f"quarantine/{self.spec.name}/")

    def columns(self) -> int:
        return len(columns_from_table(self.catalog.get_table(self.spec.name), self.spec))


def rec(eid: str, ts: Any = "2026-11-21T08:10:00Z", **extra: Any) -> str:
    return json.dumps({"event_id": eid, "ts": ts, "robot_id": "R1", **extra})


def next_hour_cleans(lake: Lake) -> None:
    """The hour after a bad one: crawled and cleaned like any other."""
    h9 = H8 + timedelta(hours=1)
    times = [h9 + timedelta(minutes=m) for m in (1, 2)]
    fmt = lake.spec.event_time_format
    ts = [
        t.timestamp() * (1000 if fmt == "epoch_millis" else 1)
        if fmt.startswith("epoch")
        else f"{t:%Y-%m-%dT%H:%M:%SZ}"
        for t in times
    ]
    report = lake.hour(h9, [rec("next-1", ts[0]), rec("next-2", ts[1])])
    assert (report.records_in, report.records_cleaned, report.records_quarantined) == (2, 2, 0)
    rows = lake.cleaned(h9)
    assert {r["event_id"]: r["ts"] for r in rows} == {"next-1": times[0], "next-2": times[1]}


# --- 1. Event times out of range --------------------------------------------------------


@pytest.mark.parametrize(
    "bad_ts",
    [
        "10000-01-01T00:00:00Z",  # year 10000: DuckDB has it, Python's date does not
        "infinity",
        "-infinity",
        "1969-12-31T23:59:59Z",  # before the stream's earliest_event_time
        "2026-11-28T09:00:01Z",  # past arrival hour's end + 168 hours
    ],
)
def test_iso_event_time_out_of_range_is_quarantined(tmp_path: Path, bad_ts: str) -> None:
    lake = Lake(tmp_path)
    good = [rec("g1"), rec("g2", "2026-11-28T09:00:00Z"), rec("g3", "1970-01-01T00:00:00Z")]
    report = lake.hour(H8, [good[0], rec("bad", bad_ts), *good[1:]])

    assert (report.records_in, report.records_cleaned, report.records_quarantined) == (4, 3, 1)
    assert report.as_metadata()["quarantined_by_reason"] == {"event_time_out_of_range": 1}
    assert sorted(r["event_id"] for r in lake.cleaned()) == ["g1", "g2", "g3"]
    [q] = lake.quarantined()
    assert (q["position"], q["reason_code"]) == (1, "event_time_out_of_range")
    assert q["reason"] == (
        f"event time out of range: {bad_ts} is not within "
        "1970-01-01T00:00:00Z .. 2026-11-28T09:00:00Z"
    )
    assert json.loads(q["raw_text"])["event_id"] == "bad"
    assert report.event_dates == {"2026-11-21", "2026-11-28", "1970-01-01"}
    next_hour_cleans(lake)


@pytest.mark.parametrize(
    ("time_format", "bad", "hint"),
    [
        ("epoch_seconds", 1e300, False),
        ("epoch_seconds", -1e300, False),
        ("epoch_seconds", 1_763_712_600_000, True),  # millis in a seconds stream
        ("epoch_millis", 1e300, False),
    ],
)
def test_epoch_event_time_out_of_range_is_quarantined(
    tmp_path: Path, time_format: str, bad: float, hint: bool
) -> None:
    lake = Lake(tmp_path, dataclasses.replace(ROBOT, event_time_format=time_format))
    good = 1_763_712_600 * (1000 if time_format == "epoch_millis" else 1)  # 2025-11-21 08:10
    report = lake.hour(H8, [rec("g1", good), rec("bad", bad), rec("g2", good)])

    assert (report.records_in, report.records_cleaned, report.records_quarantined) == (3, 2, 1)
    rows = lake.cleaned()
    assert sorted(r["event_id"] for r in rows) == ["g1", "g2"]
    assert {r["ts"] for r in rows} == {datetime(2025, 11, 21, 8, 10, tzinfo=UTC)}
    [q] = lake.quarantined()
    assert q["reason_code"] == "event_time_out_of_range"
    assert q["reason"].endswith("(milliseconds in an epoch_seconds stream?)") is hint
    next_hour_cleans(lake)


def test_other_date_columns_refuse_infinity_and_year_10000(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    lake.hour(H8, [rec("a", seen="2026-11-21T08:00:00Z", day="2026-11-21")])  # crawled types
    h9 = H8 + timedelta(hours=1)
    ts = "2026-11-21T09:01:00Z"
    records = [
        rec("b", ts, seen="infinity"),
        rec("c", ts, seen="10000-01-01T00:00:00Z"),
        rec("d", ts, day="-infinity"),
        rec("e", ts, seen="9999-12-31T23:59:59Z", day="0001-01-01"),
    ]
    report = lake.hour(h9, records, crawl=False)
    assert (report.records_cleaned, report.records_quarantined) == (1, 3)
    [row] = lake.cleaned(h9)  # every value is readable back in Python
    assert (row["event_id"], row["day"].year, row["seen"].year) == ("e", 1, 9999)
    reasons = sorted(q["reason"] for q in lake.quarantined())
    assert reasons == [
        "column day: cannot cast -infinity to date",
        "column seen: cannot cast 10000-01-01T00:00:00Z to timestamp",
        "column seen: cannot cast infinity to timestamp",
    ]
    assert {q["reason_code"] for q in lake.quarantined()} == {"cannot_cast"}


def test_the_accepted_event_time_range_is_set_per_stream(tmp_path: Path) -> None:
    config = tmp_path / "streams.yaml"
    config.write_text(
        "streams:\n  s:\n    format: ndjson\n    event_time: ts\n    dedup_key: event_id\n"
        "    limits: {earliest_event_time: 2020-01-01, max_event_time_ahead_hours: 0,"
        " max_columns: 50, max_name_bytes: 64}\n"
    )
    spec = load_streams(config)["s"]
    assert spec.limits == RecordLimits(
        max_columns=50,
        max_name_bytes=64,
        earliest_event_time=datetime(2020, 1, 1, tzinfo=UTC),
        max_event_time_ahead_hours=0,
    )
    lake = Lake(tmp_path, dataclasses.replace(ROBOT, limits=spec.limits))
    report = lake.hour(
        H8,
        [
            rec("old", "2019-12-31T23:59:59Z"),
            rec("ok", "2020-01-01T00:00:00Z"),
            rec("end", "2026-11-21T09:00:00Z"),  # the arrival hour's end: still accepted
            rec("ahead", "2026-11-21T09:00:01Z"),
        ],
    )
    assert sorted(r["event_id"] for r in lake.cleaned()) == ["end", "ok"]
    assert report.records_quarantined == 2
    assert {q["reason_code"] for q in lake.quarantined()} == {"event_time_out_of_range"}


@pytest.mark.parametrize(
    "limits",
    [
        "{max_columns: 1601}",
        "{max_columns: 0}",
        "{max_name_bytes: 128}",
        "{earliest_event_time: yesterday}",
        "{max_event_time_ahead_hours: -1}",
        "{max_nesting_depth: 201}",
        "{max_key_bytes: 0}",
        "{max_rows: 5}",
    ],
)
def test_bad_limits_are_refused_when_streams_load(tmp_path: Path, limits: str) -> None:
    config = tmp_path / "streams.yaml"
    config.write_text(
        "streams:\n  s:\n    format: ndjson\n    event_time: ts\n    dedup_key: event_id\n"
        f"    limits: {limits}\n"
    )
    with pytest.raises(StreamConfigError, match="limits"):
        load_streams(config)


# --- 2. Keys that differ only by case, the empty key ------------------------------------


def test_keys_differing_only_by_case_in_one_record_get_their_own_columns(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    record = '{"event_id":"c1","ts":"2026-11-21T08:10:00Z","Status":"up","status":"down"}'
    report = lake.hour(H8, [rec("g1"), record])

    assert (report.records_cleaned, report.records_quarantined) == (2, 0)
    rows = {r["event_id"]: r for r in lake.cleaned()}
    assert (rows["c1"]["status"], rows["c1"]["status_2"]) == ("up", "down")
    assert (rows["g1"]["status"], rows["g1"]["status_2"]) == (None, None)
    next_hour_cleans(lake)


def test_keys_differing_only_by_case_across_records_and_hours(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    lake.hour(H8, [rec("a", Status="up"), rec("b", status="down")])
    h9 = H8 + timedelta(hours=1)
    # The other order, in a later hour: each key keeps its column.
    report = lake.hour(h9, [rec("c", "2026-11-21T09:01:00Z", status="x", Status="y")])
    assert report.records_cleaned == 1
    rows = {r["event_id"]: r for r in lake.cleaned()}
    assert (rows["a"]["status"], rows["a"]["status_2"]) == ("up", None)
    assert (rows["b"]["status"], rows["b"]["status_2"]) == (None, "down")
    assert (rows["c"]["status"], rows["c"]["status_2"]) == ("y", "x")
    # The catalog reads back: both keys, by their original spelling.
    assert {"Status", "status"} <= set(stored_schema(lake.catalog.get_table(ROBOT.name)).fields)


def test_an_empty_key_is_a_column_like_any_other(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    report = lake.hour(H8, [rec("e1", **{"": 5, "nested": {"": "x", "k": 1}}), rec("g1")])
    assert (report.records_cleaned, report.records_quarantined) == (2, 0)
    rows = {r["event_id"]: r for r in lake.cleaned()}
    assert (rows["e1"]["_"], rows["e1"]["nested__"], rows["e1"]["nested_k"]) == (5, "x", 1)
    next_hour_cleans(lake)


def test_repeated_keys_in_many_shapes_are_all_quarantined(tmp_path: Path) -> None:
    """Shape hashes are UBIGINT: half of them do not fit an int64 (compared as one, the
    hour failed with ArrowInvalid)."""
    lake = Lake(tmp_path)
    dup = '{{"event_id":"d{0}","ts":"2026-11-21T08:10:00Z","k{0}":1,"k{0}":2}}'
    report = lake.hour(H8, [rec("g1"), *(dup.format(i) for i in range(8))])
    assert (report.records_cleaned, report.records_quarantined) == (1, 8)
    assert {q["reason_code"] for q in lake.quarantined()} == {"duplicate_key"}
    next_hour_cleans(lake)


# --- 3. Too many columns ----------------------------------------------------------------


def test_a_record_with_10000_keys_is_quarantined_and_the_catalog_stays_small(
    tmp_path: Path,
) -> None:
    lake = Lake(tmp_path)
    wide = rec("wide", **{f"k{i}": i for i in range(10_000)})
    report = lake.hour(H8, [rec("g1", extra=1), wide, rec("g2")])

    assert (report.records_in, report.records_cleaned, report.records_quarantined) == (3, 2, 1)
    assert lake.columns() == 4  # event_id, ts, robot_id, extra: the crawler left it out
    assert lake.crawl.hour.records_over_limits == 1
    [q] = lake.quarantined()
    assert q["reason_code"] == "too_many_columns"
    assert q["reason"] == "too many columns: 10003 top-level keys, the stream allows 1000 columns"
    next_hour_cleans(lake)
    assert lake.columns() == 4


def test_the_catalog_and_cleaning_stop_at_max_columns(tmp_path: Path) -> None:
    lake = Lake(tmp_path, dataclasses.replace(ROBOT, limits=RecordLimits(max_columns=6)))
    # The crawler takes new columns in order while there is room: 3 + a, b, c.
    lake.hour(H8, [rec("r1", a=1, b=2), rec("r2", c=3, d=4, e=5)])
    table = lake.catalog.get_table(ROBOT.name)
    assert [c["Name"] for c in table["StorageDescriptor"]["Columns"]] == [
        "event_id", "ts", "robot_id", "a", "b", "c",
    ]  # fmt: skip
    assert lake.crawl.hour.columns_over_limit == ["d", "e"]
    rows = {r["event_id"]: r for r in lake.cleaned()}
    assert set(rows) == {"r1"}
    [q] = lake.quarantined()
    assert (q["reason_code"], json.loads(q["raw_text"])["event_id"]) == ("too_many_columns", "r2")
    assert "field 'd' would take the stream past 6 columns" in q["reason"]

    # A field the catalog lacks (not crawled) fits no more: quarantined, never dropped.
    h9 = H8 + timedelta(hours=1)
    report = lake.hour(h9, [rec("r3", "2026-11-21T09:01:00Z", a=7), rec("r4", "2026-11-21T09:02:00Z", z={"x": 1})], crawl=False)  # fmt: skip
    assert (report.records_cleaned, report.records_quarantined) == (1, 1)
    assert report.columns_not_in_catalog == {"added": [], "over_limits": ["z"]}
    assert lake.cleaned(h9)[0]["a"] == 7


def test_fields_the_catalog_lacks_are_added_while_there_is_room(tmp_path: Path) -> None:
    lake = Lake(tmp_path, dataclasses.replace(ROBOT, limits=RecordLimits(max_columns=5)))
    lake.hour(H8, [rec("r1")])
    h9 = H8 + timedelta(hours=1)
    ts = "2026-11-21T09:01:00Z"
    records = [rec("n1", ts, new1=1), rec("n2", ts, new2={"x": 1, "y": 2}), rec("n3", ts, new1=3)]
    report = lake.hour(h9, records, crawl=False)
    assert report.columns_not_in_catalog == {"added": ["new1"], "over_limits": ["new2"]}
    assert sorted(r["event_id"] for r in lake.cleaned(h9)) == ["n1", "n3"]
    assert [q["reason_code"] for q in lake.quarantined()] == ["too_many_columns"]


def _nested(depth: int) -> str:
    """A JSON value `depth` objects deep."""
    return '{"x":' * (depth - 1) + "{}" + "}" * (depth - 1)


@pytest.mark.parametrize("depth", [400, 3000, 100_000])
def test_a_record_nested_too_deep_is_quarantined(tmp_path: Path, depth: int) -> None:
    lake = Lake(tmp_path)
    deep = '{"event_id":"deep","ts":"2026-11-21T08:10:00Z","d":' + _nested(depth) + "}"
    ok = '{"event_id":"ok","ts":"2026-11-21T08:10:00Z","e":' + _nested(99) + "}"  # 100 levels
    report = lake.hour(H8, [rec("g1"), deep, ok])
    assert (report.records_in, report.records_cleaned, report.records_quarantined) == (3, 2, 1)
    [q] = lake.quarantined()
    assert q["reason_code"] == "too_deep" and q["raw_text"].startswith('{"event_id":"deep"')
    assert "d" not in stored_schema(lake.catalog.get_table(ROBOT.name)).fields
    next_hour_cleans(lake)


@pytest.mark.parametrize("fmt", ["concatenated_json", "ndjson"])
def test_too_deep_for_any_parser_beside_a_malformed_record(tmp_path: Path, fmt: str) -> None:
    """A malformed record sends the object to the Python splitter, whose parser recurses:
    a record 50,000 levels deep is a reason there too, found in linear time."""
    lake = Lake(tmp_path, dataclasses.replace(ROBOT, format=fmt))
    deep = '{"event_id":"deep","ts":"2026-11-21T08:10:00Z","d":' + _nested(50_000) + "}"
    report = lake.hour(H8, [rec("g1"), deep, '{"event_id":"broken",', rec("g2")])
    assert report.objects_split_in_python == 1
    assert (report.records_cleaned, report.records_quarantined) == (2, 2)
    codes = {q["raw_text"][:18]: q["reason_code"] for q in lake.quarantined()}
    assert codes['{"event_id":"deep"'] == "too_deep"
    assert sorted(r["event_id"] for r in lake.cleaned()) == ["g1", "g2"]
    next_hour_cleans(lake)


def test_a_key_past_max_key_bytes_is_quarantined(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    long_key = "k" * 1025
    report = lake.hour(
        H8,
        [
            rec("top", **{long_key: 1}),
            rec("nested", n={long_key: 1}),
            rec("fits", **{"k" * 1024: 2}),
        ],
    )
    assert (report.records_cleaned, report.records_quarantined) == (1, 2)
    reasons = {json.loads(q["raw_text"])["event_id"]: q for q in lake.quarantined()}
    assert {q["reason_code"] for q in reasons.values()} == {"key_too_long"}
    assert reasons["top"]["reason"].startswith("key too long: 1025 bytes")
    [row] = lake.cleaned()
    assert [v for k, v in row.items() if k.startswith("kkk")] == [2]
    next_hour_cleans(lake)


# --- 4. Names that collide after normalisation stay put ---------------------------------


COLLIDING = ["a.b", "a_b", "A_B", "a-b"]


def _column_of(rows: list[dict[str, Any]], value: Any) -> str:
    [name] = [k for row in rows for k, v in row.items() if v == value]
    return name


def test_colliding_keys_keep_their_columns_whatever_order_they_come_in(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    first = {key: f"h8-{key}" for key in COLLIDING}
    lake.hour(H8, [rec("r8", **first)])
    names = {key: _column_of(lake.cleaned(H8), f"h8-{key}") for key in COLLIDING}
    assert len(set(names.values())) == 4

    for n, order in enumerate([COLLIDING[::-1], [COLLIDING[2], COLLIDING[0]]], start=1):
        hour = H8 + timedelta(hours=n)
        values = {key: f"h{n}-{key}" for key in order}
        lake.hour(hour, [rec(f"r{n}", f"{hour:%Y-%m-%dT%H}:01:00Z", **values)])
        rows = lake.cleaned(hour)
        assert {key: _column_of(rows, f"h{n}-{key}") for key in order} == {
            key: names[key] for key in order
        }


def test_a_new_nested_field_does_not_move_a_top_level_column(tmp_path: Path) -> None:
    """`a_c` (top level) and `a.c` (field c of struct a) both flatten to a_c; the one named
    first keeps it, even though the struct comes first in the table."""
    lake = Lake(tmp_path)
    lake.hour(H8, [rec("r1", a={"b": 1}, a_c="top-8")])
    assert _column_of(lake.cleaned(H8), "top-8") == "a_c"
    h9 = H8 + timedelta(hours=1)
    lake.hour(h9, [rec("r2", "2026-11-21T09:01:00Z", a={"b": 1, "c": "nested-9"}, a_c="top-9")])
    rows = lake.cleaned(h9)
    assert _column_of(rows, "top-9") == "a_c"
    nested = _column_of(rows, "nested-9")
    assert nested.startswith("a_c_") and len(nested) == len("a_c_") + 8
    # Kept in the catalog table, so any reader of it (marts, Redshift DDL) agrees.
    names = json.loads(lake.catalog.get_table(ROBOT.name)["Parameters"][PARAMETER])
    assert (names["a_c"], names[nested]) == (["a_c"], ["a", "c"])


def test_a_table_written_before_names_were_kept_keeps_its_columns() -> None:
    legacy = catalog_table(
        "robot_telemetry",
        [("event_id", "string"), ("ts", "timestamp"), ("a", "struct<b:int>"), ("a_b", "string")],
        Parameters={},
    )
    columns = columns_from_table(legacy, ROBOT)
    assert [(c.name, c.path) for c in columns][2:] == [("a_b", ("a", "b")), ("a_b_2", ("a_b",))]


def test_long_keys_get_capped_deterministic_names(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    long_a, long_b = "x" * 300 + "a", "x" * 300 + "b"
    lake.hour(H8, [rec("r1", **{long_a: "va", long_b: "vb"})])
    rows = lake.cleaned(H8)
    a, b = _column_of(rows, "va"), _column_of(rows, "vb")
    assert a != b and len(a) <= 127 and len(b) <= 127
    h9 = H8 + timedelta(hours=1)
    lake.hour(h9, [rec("r2", "2026-11-21T09:01:00Z", **{long_b: "vb9", long_a: "va9"})])
    rows = lake.cleaned(h9)
    assert (_column_of(rows, "va9"), _column_of(rows, "vb9")) == (a, b)
    table = lake.catalog.get_table(ROBOT.name)
    assert max(len(c["Name"]) for c in table["StorageDescriptor"]["Columns"]) <= 127


def test_an_hour_whose_records_never_carry_the_dedup_key_is_quarantined_not_failed(
    tmp_path: Path,
) -> None:
    """No catalog yet and no record with the dedup key: typing has no key column, so
    every record is quarantined for it (the run used to fail, on every retry)."""
    lake = Lake(tmp_path)
    keyless = [json.dumps({"ts": "2026-11-21T08:10:00Z", "robot_id": f"R{i}"}) for i in range(3)]
    report = lake.hour(H8, keyless, crawl=False)
    assert (report.records_in, report.records_quarantined) == (3, 3)
    assert {q["reason_code"] for q in lake.quarantined()} == {"missing_dedup_key"}
    next_hour_cleans(lake)


def test_records_only_duckdb_accepts_are_cleaned_with_no_catalog(tmp_path: Path) -> None:
    """Trailing commas: Python's parser (the crawler's sample) refuses every record,
    DuckDB's reader takes them; the hour is typed from the records themselves."""
    lake = Lake(tmp_path)
    lenient = [
        f'{{"event_id":"t{i}","ts":"2026-11-21T08:10:00Z","robot_id":"R1",}}' for i in range(50)
    ]
    report = lake.hour(H8, lenient, crawl=False)
    assert (report.records_in, report.records_cleaned) == (50, 50)
    assert sorted(r["event_id"] for r in lake.cleaned()) == sorted(f"t{i}" for i in range(50))
    next_hour_cleans(lake)


def test_an_indented_line_beside_a_malformed_one_is_cleaned(tmp_path: Path) -> None:
    """The Python splitter keeps a line's leading tab (DuckDB's reader drops it): the
    record is still an object, cleaned, not quarantined as a JSON number."""
    lake = Lake(tmp_path, dataclasses.replace(ROBOT, format="ndjson"))
    report = lake.hour(H8, [rec("g1"), "\t" + rec("tab"), '{"event_id":"broken",', rec("g2")])
    assert report.objects_split_in_python == 1
    assert sorted(r["event_id"] for r in lake.cleaned()) == ["g1", "g2", "tab"]
    [q] = lake.quarantined()
    assert q["raw_text"] == '{"event_id":"broken",'
