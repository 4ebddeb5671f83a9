"""Classifying landed objects from a bounded sample of their content, through real files."""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake.classifiers import Classified, SampleLimits, classify_object
from lake.hive_types import Array, Struct
from lake.storage import LocalStorage, ObjectNotFound

CLOUDTRAIL_RECORD = {
    "eventVersion": "1.08",
    "userIdentity": {
        "type": "IAMUser",
        "principalId": "EXAMPLE6E4XEGITWATV6R",
        "arn": "arn:aws:iam::123456789012:user/Mateo",
        "accountId": "123456789012",
        "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
        "userName": "Mateo",
        "sessionContext": {
            "sessionIssuer": {},
            "webIdFederationData": {},
            "attributes": {"creationDate": "2023-07-19T21:11:57Z", "mfaAuthenticated": "false"},
        },
    },
    "eventTime": "2023-07-19T21:14:20Z",
    "eventSource": "ec2.amazonaws.com",
    "eventName": "StartInstances",
    "awsRegion": "us-east-1",
    "sourceIPAddress": "192.0.2.0",
    "userAgent": "aws-cli/2.13.5 Python/3.11.4 Linux/4.14.255-314-253.539.amzn2.x86_64 exec-env/CloudShell exe/x86_64.amzn.2 prompt/off command/ec2.start-instances",
    "requestParameters": {
        "instancesSet": {
            "items": [
                {"instanceId": "i-EXAMPLE56126103cb"},
                {"instanceId": "i-EXAMPLEaff4840c22"},
            ]
        }
    },
    "responseElements": {
        "requestId": "e4336db0-149f-4a6b-844d-EXAMPLEb9d16",
        "instancesSet": {
            "items": [
                {
                    "instanceId": "i-EXAMPLEaff4840c22",
                    "currentState": {"code": 0, "name": "pending"},
                    "previousState": {"code": 80, "name": "stopped"},
                },
                {
                    "instanceId": "i-EXAMPLE56126103cb",
                    "currentState": {"code": 0, "name": "pending"},
                    "previousState": {"code": 80, "name": "stopped"},
                },
            ]
        },
    },
    "requestID": "e4336db0-149f-4a6b-844d-EXAMPLEb9d16",
    "eventID": "e755e09c-42f9-4c5c-9064-EXAMPLE228c7",
    "readOnly": False,
    "eventType": "AwsApiCall",
    "managementEvent": True,
    "recipientAccountId": "123456789012",
    "eventCategory": "Management",
    "tlsDetails": {
        "tlsVersion": "TLSv1.2",
        "cipherSuite": "ECDHE-RSA-AES128-GCM-SHA256",
        "clientProvidedHostHeader": "ec2.us-east-1.amazonaws.com",
    },
    "sessionCredentialFromConsole": "true",
}


@pytest.fixture
def landing(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "landing")


def _classify(
    storage: LocalStorage, key: str, data: bytes, limits: SampleLimits | None = None, **kw
) -> Classified:
    storage.write(key, data)
    size = storage.path(key).stat().st_size
    if limits is None:
        return classify_object(storage, key, size, **kw)
    return classify_object(storage, key, size, limits, **kw)


def _telemetry(n: int) -> list[dict]:
    return [
        {
            "robot_id": f"r-{i % 7}",
            "seq": i,
            "ts": f"2024-05-01T12:{i % 60:02d}:00Z",
            "pose": {"x": i * 0.5, "y": -i, "heading": {"deg": i % 360, "ok": i % 2 == 0}},
            "faults": [{"code": f"E{i}", "level": 2}] if i % 3 == 0 else [],
            "note": None,
        }
        for i in range(n)
    ]


def _nested(depth: int) -> dict:
    doc: dict = {"leaf": "bottom", "n": depth}
    for level in range(depth - 1):
        doc = {"level": level, "child": doc}
    return doc


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


# --- JSON framings ----------------------------------------------------------------------


def test_firehose_concatenated_gzip(landing: LocalStorage) -> None:
    records = _telemetry(50)
    body = "".join(json.dumps(r, separators=(",", ":")) for r in records).encode()
    data = gzip.compress(body, mtime=0)

    found = _classify(landing, "robot/part-0001.gz", data)

    assert (found.classification, found.compression, found.framing) == (
        "json",
        "gzip",
        "concatenated",
    )
    assert found.records == records
    assert found.complete and found.record_count == 50 and found.bad_records == 0
    assert found.sampled_bytes == len(body) and found.raw_bytes_read == len(data)
    assert found.reason is None


def test_ndjson(landing: LocalStorage) -> None:
    records = _telemetry(20)
    records[3]["note"] = "line\u2028separator stays inside the string"
    body = "\r\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n"

    found = _classify(landing, "clicks/part.json", body.encode())

    assert (found.classification, found.compression, found.framing) == ("json", "none", "ndjson")
    assert found.records == records
    assert found.complete and found.record_count == 20


def test_pretty_printed_documents_one_after_another_are_concatenated(
    landing: LocalStorage,
) -> None:
    records = _telemetry(5)
    body = "\n".join(json.dumps(r, indent=2) for r in records).encode()

    found = _classify(landing, "pretty.json", body)

    assert found.framing == "concatenated"
    assert found.records == records


def test_json_array(landing: LocalStorage) -> None:
    records = _telemetry(30)

    found = _classify(landing, "export.json", json.dumps(records, indent=1).encode())

    assert (found.classification, found.framing) == ("json", "array")
    assert found.records == records
    assert found.complete and found.record_count == 30


def test_single_object(landing: LocalStorage) -> None:
    record = _telemetry(1)[0]

    found = _classify(landing, "one.json", b"\xef\xbb\xbf  " + json.dumps(record).encode() + b"\n")

    assert (found.classification, found.framing) == ("json", "single")
    assert found.records == [record] and found.record_count == 1 and found.complete


def test_cloudtrail_wrapper(landing: LocalStorage) -> None:
    second = {**CLOUDTRAIL_RECORD, "eventName": "StopInstances", "eventID": "e755-2"}
    doc = {"Records": [CLOUDTRAIL_RECORD, second]}
    data = gzip.compress(json.dumps(doc).encode())

    found = _classify(landing, "AWSLogs/123456789012/CloudTrail/file.json.gz", data)

    assert (found.classification, found.compression) == ("json", "gzip")
    assert (found.framing, found.records_key) == ("wrapper", "Records")
    assert found.records == [CLOUDTRAIL_RECORD, second]
    assert found.records[0]["requestParameters"]["instancesSet"]["items"][1] == {
        "instanceId": "i-EXAMPLEaff4840c22"
    }
    assert found.complete and found.record_count == 2


def test_wrapper_larger_than_the_sample_is_read_record_by_record(landing: LocalStorage) -> None:
    records = [{**CLOUDTRAIL_RECORD, "eventID": f"id-{i}"} for i in range(400)]
    body = json.dumps({"Records": records}).encode()
    limits = SampleLimits(max_bytes=64 * 1024)

    found = _classify(landing, "trail.json", body, limits, records_key_hint="Records")

    assert (found.framing, found.records_key) == ("wrapper", "Records")
    assert 0 < len(found.records) < 400
    assert found.records == records[: len(found.records)]
    assert not found.complete and found.record_count is None and found.bad_records == 0
    assert found.sampled_bytes <= 64 * 1024 < len(body)


def test_empty_wrapper_needs_the_hint(landing: LocalStorage) -> None:
    with_hint = _classify(landing, "a.json", b'{"Records": []}', records_key_hint="Records")
    without = _classify(landing, "b.json", b'{"Records": []}')

    assert (with_hint.framing, with_hint.records_key, with_hint.records) == (
        "wrapper",
        "Records",
        [],
    )
    assert (without.framing, without.records) == ("single", [{"Records": []}])


def test_record_with_several_lists_of_objects_is_not_a_wrapper(landing: LocalStorage) -> None:
    record = {"order": 1, "lines": [{"sku": "a"}], "payments": [{"amount": 3}]}

    found = _classify(landing, "order.json", json.dumps(record).encode())

    assert (found.framing, found.records_key, found.records) == ("single", None, [record])


def test_malformed_records_are_counted_and_skipped(landing: LocalStorage) -> None:
    good = _telemetry(6)
    parts = [json.dumps(r) for r in good]
    concatenated = "".join(parts[:3]) + '{"seq": 99, "broken": tru' + "".join(parts[3:])
    lines = "\n".join(parts[:3] + ['{"seq": 99, "broken": }'] + parts[3:]) + "\n"

    as_concatenated = _classify(landing, "c.json", concatenated.encode())
    as_ndjson = _classify(landing, "n.json", lines.encode())

    for found, framing in ((as_concatenated, "concatenated"), (as_ndjson, "ndjson")):
        assert found.framing == framing
        assert found.records == good
        assert found.bad_records == 1
        assert found.record_count == 7 and found.complete


def test_five_megabyte_single_record(landing: LocalStorage) -> None:
    record = {
        "id": "big",
        "blob": "x" * (5 * 2**20),
        "readings": list(range(1000)),
        "meta": {"source": "sensor", "tags": ["a", "b"]},
    }
    body = json.dumps(record).encode()

    found = _classify(landing, "big.json", body)

    assert (found.classification, found.framing) == ("json", "single")
    assert found.records == [record] and found.complete
    assert found.sampled_bytes == len(body)


def test_first_record_over_max_record_bytes_is_unknown(landing: LocalStorage) -> None:
    body = json.dumps({"id": 1, "blob": "y" * (5 * 2**20)}).encode()
    limits = SampleLimits(max_record_bytes=2**20)

    found = _classify(landing, "huge.json", body, limits)

    assert found.classification == "UNKNOWN"
    assert "max_record_bytes" in (found.reason or "")
    assert found.raw_bytes_read < 2 * 2**20 < len(body)


def test_sixty_four_levels_of_nesting(landing: LocalStorage) -> None:
    record = _nested(64)
    assert _depth(record) == 64
    body = "\n".join([json.dumps(record)] * 3).encode()

    found = _classify(landing, "deep.json", gzip.compress(body))

    assert (found.classification, found.framing) == ("json", "ndjson")
    assert found.records == [record] * 3


# --- Sampling: the cost does not grow with the object -----------------------------------


def test_twenty_megabyte_gzip_is_sampled_not_read(landing: LocalStorage) -> None:
    rng = random.Random(7)
    block = [{"seq": i, "payload": rng.randbytes(240).hex()} for i in range(2000)]
    body = "".join(json.dumps(r) for r in block * 40).encode()
    data = gzip.compress(body, compresslevel=1, mtime=0)
    assert len(data) > 20 * 10**6

    found = _classify(landing, "firehose/huge.gz", data)

    assert (found.classification, found.compression, found.framing) == (
        "json",
        "gzip",
        "concatenated",
    )
    assert found.records == block[:1000]
    assert not found.complete and found.record_count is None
    assert found.sampled_bytes <= SampleLimits().max_bytes
    assert found.raw_bytes_read < len(data) / 20


def test_custom_limits_take_ten_records(landing: LocalStorage) -> None:
    records = _telemetry(100)
    body = "\n".join(json.dumps(r) for r in records).encode()

    found = _classify(landing, "ten.json", body, SampleLimits(max_records=10))

    assert found.records == records[:10]
    assert not found.complete and found.record_count is None


@pytest.mark.parametrize(
    "name, framing",
    [("concatenated", "concatenated"), ("ndjson", "ndjson"), ("array", "array")],
)
def test_a_record_cut_by_the_sample_end_is_not_bad(
    landing: LocalStorage, name: str, framing: str
) -> None:
    records = _telemetry(40)
    bodies = {
        "concatenated": "".join(json.dumps(r) for r in records),
        "ndjson": "\n".join(json.dumps(r) for r in records),
        "array": json.dumps(records),
    }
    landing.write("cut.json", bodies[name].encode())
    size = len(bodies[name])
    for max_bytes in range(150, size, 173):
        found = classify_object(landing, "cut.json", size, SampleLimits(max_bytes=max_bytes))
        assert found.framing == framing
        assert found.bad_records == 0
        assert found.records == records[: len(found.records)]
        assert not found.complete


# --- Broken and empty objects -----------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"  \n\t\r\n", gzip.compress(b"")])
def test_empty_object(landing: LocalStorage, data: bytes) -> None:
    found = _classify(landing, "empty", data)

    assert found.classification == "UNKNOWN"
    assert found.reason == "empty object"


def test_binary_junk(landing: LocalStorage) -> None:
    junk = b"\x7fELF\x02\x01\x01\x00" + random.Random(3).randbytes(4096)

    found = _classify(landing, "junk.bin", junk)

    assert found.classification == "UNKNOWN"
    assert "binary" in (found.reason or "")


def test_invalid_utf8(landing: LocalStorage) -> None:
    latin1 = "name,city\nRené,Orléans\nZoë,Besançon\n".encode("latin-1")

    found = _classify(landing, "latin1.csv", latin1)

    assert found.classification == "UNKNOWN"
    assert "UTF-8" in (found.reason or "")


def test_truncated_gzip_keeps_the_whole_records_before_the_cut(landing: LocalStorage) -> None:
    rng = random.Random(5)
    records = [{"seq": i, "payload": rng.randbytes(50).hex()} for i in range(500)]
    data = gzip.compress("\n".join(json.dumps(r) for r in records).encode())

    found = _classify(landing, "cut.gz", data[: len(data) // 2])

    assert (found.classification, found.framing) == ("json", "ndjson")
    assert 0 < len(found.records) < 500
    assert found.records == records[: len(found.records)]
    assert found.bad_records == 0 and not found.complete
    assert "truncated" in (found.reason or "")


def test_gzip_cut_inside_the_first_record_is_unknown(landing: LocalStorage) -> None:
    data = gzip.compress(json.dumps({"blob": random.Random(2).randbytes(5000).hex()}).encode())

    found = _classify(landing, "cut.gz", data[: len(data) // 2])

    assert found.classification == "UNKNOWN"
    assert "truncated" in (found.reason or "")


def test_corrupt_gzip_is_unknown(landing: LocalStorage) -> None:
    data = bytearray(gzip.compress(b'{"a": 1}' * 100))
    data[10:30] = b"\xff" * 20

    found = _classify(landing, "bad.gz", bytes(data))

    assert found.classification == "UNKNOWN"
    assert "gzip" in (found.reason or "")


def test_free_text_is_unknown(landing: LocalStorage) -> None:
    text = "Started the robot fleet.\nAll systems nominal, mostly\nshutting down\n"

    found = _classify(landing, "log.txt", text.encode())

    assert found.classification == "UNKNOWN"
    assert "delimit" in (found.reason or "")


def test_missing_object_raises(landing: LocalStorage) -> None:
    with pytest.raises(ObjectNotFound):
        classify_object(landing, "nope.json", 10)


# --- CSV --------------------------------------------------------------------------------


def test_csv_with_header(landing: LocalStorage) -> None:
    text = "id,name,score,active,joined\n1,Alice,9.5,true,2024-01-02\n2,Bob,,FALSE,2024-02-03\n"

    found = _classify(landing, "users.csv", text.encode())

    assert (found.classification, found.delimiter, found.has_header) == ("csv", ",", True)
    assert found.column_names == ["id", "name", "score", "active", "joined"]
    assert found.records == [
        {"id": 1, "name": "Alice", "score": 9.5, "active": True, "joined": "2024-01-02"},
        {"id": 2, "name": "Bob", "score": None, "active": False, "joined": "2024-02-03"},
    ]
    assert found.complete and found.record_count == 2


def test_csv_without_header_uses_glue_column_names(landing: LocalStorage) -> None:
    text = "7|alpha|1.25\n8|beta|-3\n9|gamma|0.5\n"

    found = _classify(landing, "rows.psv", gzip.compress(text.encode()))

    assert (found.classification, found.compression) == ("csv", "gzip")
    assert (found.delimiter, found.has_header) == ("|", False)
    assert found.column_names == ["col1", "col2", "col3"]
    assert found.records == [
        {"col1": 7, "col2": "alpha", "col3": 1.25},
        {"col1": 8, "col2": "beta", "col3": -3},
        {"col1": 9, "col2": "gamma", "col3": 0.5},
    ]


@pytest.mark.parametrize("delimiter", ["\t", ";"])
def test_tab_and_semicolon_csv(landing: LocalStorage, delimiter: str) -> None:
    rows = [["sensor", "reading", "unit"], ["t1", "20.5", "C"], ["t2", "21", "C"]]
    text = "\n".join(delimiter.join(row) for row in rows) + "\n"

    found = _classify(landing, "sensors.txt", text.encode())

    assert (found.classification, found.delimiter, found.has_header) == ("csv", delimiter, True)
    assert found.records == [
        {"sensor": "t1", "reading": 20.5, "unit": "C"},
        {"sensor": "t2", "reading": 21, "unit": "C"},
    ]


def test_csv_quoted_fields(landing: LocalStorage) -> None:
    rows = [
        ["id", "address", "comment"],
        ["1", "1 Main St, Springfield", 'said "hi", left'],
        ["2", "2 Elm St,\nApt 4", "multi\nline"],
    ]
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)

    found = _classify(landing, "quoted.csv", buffer.getvalue().encode())

    assert (found.delimiter, found.has_header) == (",", True)
    assert found.records == [
        {"id": 1, "address": "1 Main St, Springfield", "comment": 'said "hi", left'},
        {"id": 2, "address": "2 Elm St,\nApt 4", "comment": "multi\nline"},
    ]


def test_all_text_csv_header_is_judged_by_shape(landing: LocalStorage) -> None:
    with_header = "name,email\nAlice Smith,alice@example.com\nBob Jones,bob@example.com\n"
    no_header = "alice,smith\nbob,jones\ncarol,white\n"

    header = _classify(landing, "a.csv", with_header.encode())
    plain = _classify(landing, "b.csv", no_header.encode())

    assert (header.has_header, header.column_names) == (True, ["name", "email"])
    assert header.records[0] == {"name": "Alice Smith", "email": "alice@example.com"}
    assert (plain.has_header, plain.column_names) == (False, ["col1", "col2"])
    assert plain.records[0] == {"col1": "alice", "col2": "smith"}


def test_csv_sample_stops_at_max_records(landing: LocalStorage) -> None:
    text = "id,value\n" + "".join(f"{i},{i * 2}\n" for i in range(500))

    found = _classify(landing, "many.csv", text.encode(), SampleLimits(max_records=10))

    assert found.has_header
    assert found.records == [{"id": i, "value": i * 2} for i in range(10)]
    assert not found.complete and found.record_count is None


# --- Parquet ----------------------------------------------------------------------------


def test_parquet_schema_comes_from_the_footer_alone(landing: LocalStorage, tmp_path: Path) -> None:
    n = 60_000
    rng = random.Random(11)
    table = pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "name": pa.array([rng.randbytes(16).hex() for _ in range(n)]),
            "count": pa.array([i % 100 for i in range(n)], pa.int32()),
            "ok": pa.array([i % 2 == 0 for i in range(n)]),
            "score": pa.array([i / 3 for i in range(n)]),
            "at": pa.array([datetime(2024, 1, 1)] * n, pa.timestamp("ms")),
            "day": pa.array([date(2024, 1, 1)] * n, pa.date32()),
            "price": pa.array([Decimal("1.25")] * n, pa.decimal128(10, 2)),
            "pose": pa.array(
                [{"x": i % 1000, "label": "p"} for i in range(n)],
                pa.struct([("x", pa.int16()), ("label", pa.string())]),
            ),
            "tags": pa.array([["a", "b"]] * n, pa.list_(pa.string())),
        }
    )
    path = tmp_path / "landing" / "cleaned" / "part-0.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(table, path, compression="none")
    size = path.stat().st_size
    assert size > 2 * 10**6

    found = classify_object(landing, "cleaned/part-0.parquet", size)

    assert found.classification == "parquet"
    assert found.record_count == n
    assert found.column_names == table.column_names
    assert found.schema_hint == Struct(
        {
            "id": "bigint",
            "name": "string",
            "count": "int",
            "ok": "boolean",
            "score": "double",
            "at": "timestamp",
            "day": "date",
            "price": "decimal(10,2)",
            "pose": Struct({"x": "int", "label": "string"}),
            "tags": Array("string"),
        }
    )
    assert found.records == [] and not found.complete
    assert found.raw_bytes_read < size / 10


def test_truncated_parquet_is_unknown(landing: LocalStorage) -> None:
    buffer = io.BytesIO()
    pq.write_table(pa.table({"a": list(range(1000))}), buffer)
    data = buffer.getvalue()

    found = _classify(landing, "cut.parquet", data[: len(data) // 2])

    assert found.classification == "UNKNOWN"
    assert "Parquet" in (found.reason or "")


def test_a_sample_of_many_malformed_records_costs_each_a_slice(
    landing: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resuming after a malformed record tries each later `{`; each failed try must cost
    a slice near it, not the rest of the sample (the stdlib's error counts the lines up to
    its position): 10 MB of such records took over 10 minutes to sample."""
    from lake import json_text

    seen: list[int] = []
    real = json_text.raw_decode

    def recording(text: str, pos: int):
        seen.append(len(text) - pos)
        return real(text, pos)

    monkeypatch.setattr(json_text, "raw_decode", recording)
    text = "".join(f'{{"event_id":"b{i}","robot_id":"R1",}}' for i in range(20_000))
    landing.write("s/2026/11/21/08/s-1-2026-11-21-08-00-00-x", text.encode())
    limits = SampleLimits(max_bytes=1 << 20, max_records=1000)
    classify_object(landing, "s/2026/11/21/08/s-1-2026-11-21-08-00-00-x", len(text), limits)
    assert len(seen) > 1000 and max(seen) <= 4 * 4096
