"""Each framing object splits, samples and reads (DuckDB) the same records from one input."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import duckdb
import pytest

from lake.classifiers import classify_object
from lake.cleaning.staging import stage_objects
from lake.framings.base import Framing
from lake.framings.concatenated_json import ConcatenatedJson
from lake.framings.csv_text import Csv
from lake.framings.json_array import JsonArray
from lake.framings.ndjson import NdJson
from lake.framings.records_wrapped import RecordsWrapped
from lake.framings.registry import DECLARED, framing_of
from lake.storage import LocalStorage
from lake.streams import FORMATS, StreamSpec, load_streams

RECORDS = [
    {"id": "a1", "n": 1, "tags": ["x", "y"], "nested": {"k": None}},
    {"id": "a2", "n": 2.5, "name": "Zoë", "ok": True},
    {"id": "a3", "n": -7, "nested": {"k": {"deep": [1, {"z": "}{"}]}}},
]
CSV_TEXT = 'id,name,score,ok\n1,a,2.5,true\n2,,3.5,false\n3,"c, d",-1,true\n'
CSV_RECORDS = [
    {"id": 1, "name": "a", "score": 2.5, "ok": True},
    {"id": 2, "name": None, "score": 3.5, "ok": False},
    {"id": 3, "name": "c, d", "score": -1.0, "ok": True},
]
LIMIT = 1 << 20

# (framing, its input written by this test, the records in it, the classifier's label)
CASES = {
    "concatenated_json": (
        ConcatenatedJson(),
        "".join(json.dumps(r) for r in RECORDS),
        RECORDS,
        "concatenated",
    ),
    "ndjson": (NdJson(), "\n".join(json.dumps(r) for r in RECORDS) + "\n", RECORDS, "ndjson"),
    "json_records": (
        RecordsWrapped("Items"),
        json.dumps({"Items": RECORDS[:2]}) + json.dumps({"Items": RECORDS[2:]}),
        RECORDS,
        "wrapper",
    ),
    "array": (JsonArray(), json.dumps(RECORDS), RECORDS, "array"),
    "csv": (Csv(",", True, ("id", "name", "score", "ok")), CSV_TEXT, CSV_RECORDS, None),
}


def _values(records: list) -> list:
    assert [r.error for r in records] == [None] * len(records)
    assert [r.position for r in records] == list(range(len(records)))
    return [r.value for r in records]


@pytest.mark.parametrize("name", CASES)
def test_split_and_streamed_split_give_the_input_records(name: str) -> None:
    framing, text, expected, _ = CASES[name]
    assert _values(list(framing.split(text))) == expected
    streamed = list(framing.split_file(io.BytesIO(text.encode()), LIMIT))
    assert _values(streamed) == expected
    assert [json.loads(r.text) for r in streamed] == expected  # the kept text is the record


@pytest.mark.parametrize("name", CASES)
def test_the_classifier_detects_the_framing_and_samples_the_input_records(
    name: str, landing: LocalStorage
) -> None:
    framing, text, expected, label = CASES[name]
    data = gzip.compress(text.encode())
    landing.write("s/obj", data)
    found = classify_object(landing, "s/obj", len(data))
    assert found.framer == framing
    assert (found.classification, found.compression) == (framing.classification, "gzip")
    assert found.framing == label
    assert (found.records, found.complete, found.record_count) == (expected, True, 3)


@pytest.mark.parametrize("name", CASES)
def test_duckdb_reads_the_input_records_with_the_framing_reader(name: str, tmp_path: Path) -> None:
    framing, text, expected, _ = CASES[name]
    reader = framing.duckdb_reader(LIMIT)
    assert reader is not None  # json_records too: DuckDB unnests each document's list
    path = tmp_path / "object"
    path.write_text(text)
    rows = duckdb.connect().execute(reader, [[str(path)]]).fetchall()
    assert [f for f, _ in rows] == [str(path)] * len(expected)
    assert [json.loads(raw) for _, raw in rows] == expected


@pytest.mark.parametrize("name", DECLARED)
def test_cleaning_stages_the_records_of_each_declared_format(
    name: str, landing: LocalStorage, tmp_path: Path
) -> None:
    framing, text, expected, _ = CASES[name]
    spec = StreamSpec(
        name="s",
        format=name,
        event_time_field="ts",
        dedup_key="id",
        records_key=framing.records_key,
    )
    assert framing_of(spec) == framing
    landing.write("s/obj.gz", gzip.compress(text.encode()))
    objects = list(landing.list("s/"))
    con = duckdb.connect()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    staged = stage_objects(con, spec, landing, objects, scratch)
    rows = con.execute(f"SELECT _object, _position, raw FROM {staged.relation} ORDER BY 1, 2")
    raws = rows.fetchall()
    assert staged.rejected == []
    assert [(o, p) for o, p, _ in raws] == [(0, 0), (0, 1), (0, 2)]
    assert [json.loads(raw) for _, _, raw in raws] == expected
    python_split = ["s/obj.gz"] if framing.duckdb_reader(LIMIT) is None else []
    assert staged.python_split == python_split


def test_the_registry_declares_what_streams_yaml_accepts() -> None:
    assert set(DECLARED) == set(FORMATS)
    streams = load_streams()
    shipped = {name: framing_of(spec) for name, spec in streams.streams.items()}
    assert shipped["robot_telemetry"] == ConcatenatedJson()
    assert shipped["clickstream"] == NdJson()
    assert shipped["cloudtrail"] == RecordsWrapped("Records")
    assert all(isinstance(f, Framing) for f in shipped.values())


@pytest.mark.parametrize("key", ["R", "filename", "_file", "it's \\\"/~0 Records"])
def test_json_records_are_staged_by_duckdb_and_a_bad_document_costs_only_its_object(
    key: str, landing: LocalStorage, tmp_path: Path
) -> None:
    """Good objects are unwrapped by DuckDB (positions running on across documents, a null
    or string element kept as its record); an object with a document that has no list
    under the key, or a broken one, goes the Python way and is refused whole with its
    reason: nothing else is held back."""
    spec = StreamSpec(
        name="s", format="json_records", event_time_field="ts", dedup_key="id", records_key=key
    )
    k = json.dumps(key)  # the key as JSON text (keys from settings are hostile)
    texts = {
        "s/a.gz": f'{{{k}:[{{"id":"a0"}},null]}}\n{{{k}:[]}}{{{k}:["x",{{"id":"a3","n":"Zoë"}}]}}',
        "s/b.gz": f'{{{k}:[{{"id":"b0"}}]}}{{"Other":[{{"id":"b1"}}]}}',
        "s/c.gz": f'{{{k}:[{{"id":"c0"}}]}}{{{k}:[{{"id":',
        "s/d.gz": f'{{"meta":1,{k}:[{{"id":"d0"}}]}}',
    }
    for name, text in texts.items():
        landing.write(name, gzip.compress(text.encode()))
    objects = list(landing.list("s/"))
    assert [o.key for o in objects] == list(texts)
    con = duckdb.connect()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    staged = stage_objects(con, spec, landing, objects, scratch)
    rows = con.execute(f"SELECT _object, _position, raw FROM {staged.relation} ORDER BY 1, 2")
    assert [(o, p, json.loads(raw)) for o, p, raw in rows.fetchall()] == [
        (0, 0, {"id": "a0"}),
        (0, 1, None),
        (0, 2, "x"),
        (0, 3, {"id": "a3", "n": "Zoë"}),
        (3, 0, {"id": "d0"}),
    ]
    assert sorted(staged.python_split) == ["s/b.gz", "s/c.gz"]
    refused = {r.object_index: (r.position, r.reason) for r in staged.rejected}
    assert refused.keys() == {1, 2}
    assert refused[1][0] == -1 and f"no list under {key!r}" in refused[1][1]
    assert refused[2][0] == -1 and refused[2][1].startswith("unreadable_object")
