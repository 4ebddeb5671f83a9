"""Objects and records too big, or not what they claim: streaming splitters, the
decompression cap, passes by decompressed size, and the per-stream limits."""

from __future__ import annotations

import gzip
import io
import json
import tracemalloc
import zlib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from lake import json_text, object_fetch
from lake.cleaning.hour import _chunks, clean_hour
from lake.firehose import hour_prefix, is_folder_marker, object_key, parse_key
from lake.framings import base
from lake.framings.base import RawRecord, UnreadableObject
from lake.framings.registry import framing_of
from lake.object_fetch import LandedObject, fetch_object
from lake.settings import DEFAULTS
from lake.storage import LocalStorage
from lake.streams import (
    DEFAULT_MAX_OBJECT_EXPANDED_BYTES,
    DEFAULT_MAX_RECORD_BYTES,
    StreamConfigError,
    StreamSpec,
    load_streams,
)

STREAMS = load_streams()
HOUR = datetime(2026, 11, 21, 8, tzinfo=UTC)
T0 = datetime(2026, 11, 21, 8, 1, tzinfo=UTC)


def _spec(fmt: str, records_key: str | None = None) -> StreamSpec:
    return StreamSpec(
        name="s", format=fmt, event_time_field="ts", dedup_key="id", records_key=records_key
    )


def _stream(text: str, spec: StreamSpec, limit: int = 1 << 20) -> list[RawRecord]:
    return list(framing_of(spec).split_file(io.BytesIO(text.encode()), limit))


def _whole(text: str, spec: StreamSpec) -> list[RawRecord]:
    return list(framing_of(spec).split(text))


def _bomb(expanded: int, head: bytes = b'{"id":"bomb","pad":"') -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [z.compress(head)]
    parts += [z.compress(b" " * (1 << 20)) for _ in range(expanded >> 20)]
    return b"".join([*parts, z.compress(b'"}'), z.flush()])


# --- the streaming splitter gives what the whole-text splitter gives ------------------

CONCATENATED = [
    "".join(json.dumps({"id": i, "v": "é" * (i % 5)}) for i in range(200)),
    '  {"id":1}\n{"id":2}  \r\n\t{"id":3}\n',
    '{"id":1}{"id":2,"bad":}{"id":3}{"id":4',  # a broken record, then a cut one at the end
    '{"id":1}{"id":"two\n"}{"id":3}' + "garbage" + '{"id":4}',
    '{"id":1}\n  \n',
    '"a string"{"id":2}123{"id":4}',
    "",
]


@pytest.mark.parametrize("text", CONCATENATED)
@pytest.mark.parametrize("block", [1, 5, 64, 1 << 20])
def test_streaming_concatenated_equals_whole_text(
    text: str, block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(base, "BLOCK_BYTES", block)  # windows that cut every record
    spec = _spec("concatenated_json")
    assert _stream(text, spec) == _whole(text, spec)


NDJSON = [
    "\n".join(json.dumps({"id": i}) for i in range(100)) + "\n",
    '{"id":1}\r\n\r\n{"id":2}\r\n{"id":\n  \n{"id":4}',
    '\ufeff{"id":"bom"}\n',
]


@pytest.mark.parametrize("text", NDJSON)
def test_streaming_ndjson_equals_whole_text(text: str) -> None:
    spec = _spec("ndjson")  # (decode_bytes drops the BOM before the split)
    assert _stream(text, spec) == _whole(text.removeprefix("\ufeff"), spec)


def test_streaming_json_records_equals_whole_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "BLOCK_BYTES", 16)
    doc = {"Records": [{"eventID": str(i), "x": [i, {"y": i}]} for i in range(50)]}
    text = json.dumps(doc) + json.dumps({"Records": [{"eventID": "last"}]})
    spec = STREAMS["cloudtrail"]
    assert _stream(text, spec) == _whole(text, spec)


@pytest.mark.parametrize(
    "data, message",
    [
        (b'{"id":1}{"id":2}\x00', "binary content: NUL byte at byte 16"),
        ('{"id":"é"}'.encode("latin-1"), "not valid UTF-8 at byte 7: b'\\xe9\"}'"),
    ],
)
def test_streaming_refuses_what_is_not_text(
    data: bytes, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(base, "BLOCK_BYTES", 3)  # the bad byte is not in the first block
    with pytest.raises(UnreadableObject, match=message.replace("\\", "\\\\").replace("(", r"\(")):
        list(framing_of(_spec("concatenated_json")).split_file(io.BytesIO(data), 1 << 20))


# --- records over max_record_bytes ----------------------------------------------------


@pytest.mark.parametrize("block", [7, 4096, 1 << 20])
def test_record_over_the_limit_is_set_aside_with_prefix_and_length(
    block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(base, "BLOCK_BYTES", block)
    monkeypatch.setattr(base, "PREFIX_CHARS", 100)
    big = json.dumps({"id": "big", "blob": ["ü{x}" * 5000, {"nested": "{}{"}]})
    text = '{"id":"a"}' + big + '{"id":"b"}{"id":"c"}'
    records = _stream(text, _spec("concatenated_json"), limit=1000)
    assert [(r.position, r.error is None) for r in records] == [
        (0, True),
        (1, False),
        (2, True),
        (3, True),
    ]
    assert [r.value["id"] for r in records if r.error is None] == ["a", "b", "c"]
    assert records[1].text == big[:100]
    assert records[1].error == (
        f"record_too_large: record of {len(big.encode())} bytes exceeds max_record_bytes=1000"
    )


def test_malformed_record_over_the_limit_is_too_large_not_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(base, "BLOCK_BYTES", 64)
    broken = '{"id":"x","blob":"' + "y" * 5000 + '",}'
    records = _stream(broken + '{"id":"after"}', _spec("concatenated_json"), limit=1000)
    assert [r.error.split(":")[0] if r.error else None for r in records] == [
        "record_too_large",
        None,
    ]
    assert f"record of {len(broken)} bytes" in records[0].error  # type: ignore[operator]
    assert records[1].value == {"id": "after"}


def test_ndjson_line_over_the_limit_is_set_aside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "PREFIX_CHARS", 10)
    long_line = json.dumps({"id": 2, "blob": "z" * 10_000})
    text = '{"id":1}\n' + long_line + '\r\n{"id":3}\n' + long_line
    records = _stream(text, _spec("ndjson"), limit=1000)
    assert [r.value["id"] for r in records if r.error is None] == [1, 3]
    too_large = [r for r in records if r.error is not None]
    assert [(r.position, r.text) for r in too_large] == [(1, long_line[:10]), (3, long_line[:10])]
    assert all(f"record of {len(long_line)} bytes" in r.error for r in too_large)  # type: ignore[operator]


def test_a_record_is_never_held_whole(tmp_path: Path) -> None:
    """A 64 MB single-line record with a 1 MB limit: Python's peak allocation stays a few
    times the limit, not the record."""
    path = tmp_path / "one-line.json"
    with open(path, "wb") as fh:
        fh.write(b'{"id":"huge","blob":"')
        for _ in range(64):
            fh.write(b"q" * (1 << 20))
        fh.write(b'"}{"id":"next"}')
    tracemalloc.start()
    try:
        with open(path, "rb") as fh:
            records = list(framing_of(_spec("concatenated_json")).split_file(fh, 1 << 20))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [r.error is None for r in records] == [False, True]
    assert records[0].error.startswith(f"record_too_large: record of {(64 << 20) + 23} bytes")  # type: ignore[union-attr]
    assert peak < 24 << 20


# --- the decompression cap ------------------------------------------------------------


class _CountingReader(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, n: int | None = -1) -> bytes:
        data = super().read(n)
        self.bytes_read += len(data)
        return data


def test_gzip_bomb_stops_at_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(object_fetch, "READ_BYTES", 4096)
    stored = _bomb(256 << 20)
    source = _CountingReader(stored)
    out = io.BytesIO()
    with pytest.raises(object_fetch._TooLarge):
        object_fetch._copy_expanded(source, out, 1 << 20)
    assert source.bytes_read <= 8192 < len(stored)  # it stopped reading, and inflating
    assert len(out.getvalue()) == 1 << 20  # what it keeps is exactly the cap


def test_gzip_bomb_object_is_refused_whole_with_its_prefix(tmp_path: Path) -> None:
    landing = LocalStorage(tmp_path / "landing")
    key = object_key("s", T0, object_id="bomb")
    landing.write(key, _bomb(64 << 20))
    [info] = landing.list("s/")
    landed = fetch_object(landing, info, 4 << 20)
    assert landed.path is None and landed.data is None and not landed.readable
    assert landed.refusal is not None
    assert landed.refusal.startswith("object_too_large_expanded: ")
    assert "max_object_expanded_bytes=4194304" in landed.refusal
    assert landed.raw_prefix.startswith('{"id":"bomb","pad":"   ')
    assert len(landed.raw_prefix) == object_fetch.PREFIX_BYTES


@pytest.mark.parametrize(
    "stored, expected",
    [
        (gzip.compress(b'{"a":1}') + gzip.compress(b'{"a":2}'), b'{"a":1}{"a":2}'),  # 2 members
        (gzip.compress(b'{"a":1}') + b"\x00" * 10, b'{"a":1}'),  # zero padding
        (b'{"plain":true}', b'{"plain":true}'),
    ],
)
def test_expansion_of_members_padding_and_plain(
    tmp_path: Path, stored: bytes, expected: bytes
) -> None:
    landing = LocalStorage(tmp_path / "landing")
    landing.write("s/k", stored)
    [info] = landing.list("s/")
    landed = fetch_object(landing, info, 1 << 20)
    assert landed.refusal is None and landed.readable
    with landed.open() as fh:
        assert fh.read() == expected and landed.expanded_bytes == len(expected)


@pytest.mark.parametrize(
    "stored",
    [
        gzip.compress(b'{"a":1}' * 1000)[:-6],  # truncated
        gzip.compress(b'{"a":1}') + b"junk after",
        gzip.compress(b'{"a":1}')[:12] + b"\xff" * 20,  # a corrupt deflate stream
    ],
)
def test_bad_gzip_is_refused_whole_as_unreadable(tmp_path: Path, stored: bytes) -> None:
    landing = LocalStorage(tmp_path / "landing")
    landing.write("s/k.gz", stored)
    [info] = landing.list("s/")
    landed = fetch_object(landing, info, 1 << 20)
    assert landed.path is None
    assert landed.refusal is not None and landed.refusal.startswith("unreadable_object: gzip")
    assert landed.raw_prefix


def _fetched_in_small_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stored: bytes
) -> LandedObject:
    monkeypatch.setattr(object_fetch, "READ_BYTES", 512)
    monkeypatch.setattr(object_fetch, "STEP", 1000)
    landing = LocalStorage(tmp_path / "landing")
    landing.write("s/k.gz", stored)
    [info] = landing.list("s/")
    return fetch_object(landing, info, 1 << 30)


_PLAIN = b"".join(b'{"n":%d}' % i for i in range(20_000))


def test_a_truncated_gzip_keeps_the_text_inflated_before_the_damage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The quarantine's prefix is the start of what inflated, whatever the steps it came in."""
    landed = _fetched_in_small_steps(tmp_path, monkeypatch, gzip.compress(_PLAIN)[:-6])
    assert landed.refusal is not None and landed.refusal.startswith("unreadable_object: gzip")
    assert landed.raw_prefix == _PLAIN[: object_fetch.PREFIX_BYTES].decode()


def test_an_object_inflated_in_many_steps_is_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    members = gzip.compress(_PLAIN[:100_000]) + gzip.compress(_PLAIN[100_000:])
    landed = _fetched_in_small_steps(tmp_path, monkeypatch, members)
    assert landed.refusal is None and landed.data == _PLAIN
    assert landed.expanded_bytes == len(_PLAIN)


# --- passes are sized by what is decompressed -----------------------------------------


def _landed(key: str, stored: int, expanded: int) -> LandedObject:
    return LandedObject(key, stored, T0, path=Path(key), expanded_bytes=expanded)


def test_passes_are_sized_by_decompressed_bytes() -> None:
    objects = [
        _landed("a", 10, 100),
        _landed("b", 10, 100),
        _landed("c", 10, 900),  # same stored size, nine times the text
        _landed("d", 10, 50),
        _landed("e", 10, 0),  # refused whole: costs nothing
    ]
    chunks = [[o.key for o in chunk] for chunk in _chunks(iter(objects), 250)]
    assert chunks == [["a", "b"], ["c"], ["d", "e"]]


# --- clean_hour end to end ------------------------------------------------------------


def _rows(lake: LocalStorage, prefix: str) -> list[dict[str, Any]]:
    return [r for o in lake.list(prefix) for r in pq.read_table(lake.path(o.key)).to_pylist()]


def _rec(eid: str, **extra: Any) -> dict[str, Any]:
    return {"event_id": eid, "ts": "2026-11-21T08:10:00Z", **extra}


@pytest.mark.parametrize("stream", ["robot_telemetry", "clickstream"])
def test_clean_hour_quarantines_too_large_and_bombs_and_cleans_the_rest(
    tmp_path: Path, stream: str
) -> None:
    several_passes = replace(DEFAULTS, clean_chunk_bytes=3 << 20)
    spec = STREAMS[stream].with_limits(max_record_bytes=1 << 20, max_object_expanded_bytes=8 << 20)
    sep = "\n" if spec.format == "ndjson" else ""
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    good = []
    for n in range(6):
        records = [_rec(f"g{n}-{i}", pad="p" * 5000) for i in range(300)]  # ~1.5 MB each
        good += [r["event_id"] for r in records]
        key = object_key(stream, T0.replace(minute=n), object_id=f"good{n}")
        landing.write(key, gzip.compress(sep.join(json.dumps(r) for r in records).encode()))
    big = [_rec("b0"), _rec("b1", blob="x" * (3 << 20)), _rec("b2")]
    big_key = object_key(stream, T0.replace(minute=10), object_id="big")
    landing.write(big_key, gzip.compress(sep.join(json.dumps(r) for r in big).encode()))
    bomb_key = object_key(stream, T0.replace(minute=11), object_id="bomb")
    landing.write(
        bomb_key, _bomb(64 << 20, head=json.dumps(_rec("bomb"))[:-1].encode() + b', "x":"')
    )
    objects = list(landing.list(hour_prefix(stream, HOUR)))

    report = clean_hour(spec, None, landing, lake, HOUR, objects, settings=several_passes)

    assert report.unbalanced_objects == []
    assert (report.records_in, report.records_cleaned, report.records_quarantined) == (
        len(good) + 3 + 1,
        len(good) + 2,
        2,
    )
    cleaned = sorted(r["event_id"] for r in _rows(lake, f"cleaned/{stream}/"))
    assert cleaned == sorted([*good, "b0", "b2"])
    quarantine = {r["source_key"]: r for r in _rows(lake, f"quarantine/{stream}/")}
    assert quarantine[big_key]["position"] == 1
    assert quarantine[big_key]["reason"] == (
        f"record_too_large: record of {len(json.dumps(big[1]))} bytes "
        "exceeds max_record_bytes=1048576"
    )
    assert quarantine[bomb_key]["position"] == -1
    assert quarantine[bomb_key]["reason"].startswith("object_too_large_expanded: ")
    assert quarantine[big_key]["reason_code"] == "record_too_large"
    assert quarantine[bomb_key]["reason_code"] == "object_too_large_expanded"


# --- the limits are per stream, with defaults -----------------------------------------


def test_limits_default_and_parse(tmp_path: Path) -> None:
    spec = STREAMS["robot_telemetry"]
    assert spec.limits.max_record_bytes == DEFAULT_MAX_RECORD_BYTES == 32 << 20
    assert spec.limits.max_object_expanded_bytes == DEFAULT_MAX_OBJECT_EXPANDED_BYTES == 256 << 20
    path = tmp_path / "streams.yaml"
    body = "streams:\n  s:\n    format: ndjson\n    event_time: ts\n    dedup_key: id\n"
    path.write_text(
        body + "    limits:\n      max_record_bytes: 1000\n      max_object_expanded_bytes: 5000\n"
    )
    parsed = load_streams(path)["s"]
    assert (parsed.limits.max_record_bytes, parsed.limits.max_object_expanded_bytes) == (1000, 5000)


@pytest.mark.parametrize(
    "limits",
    [
        "    limits:\n      max_record_bytes: 0\n",
        "    limits:\n      max_record_bytes: 1000000000\n",  # over the 64 MiB a parse may take
        "    limits:\n      max_record_bytes: 1000\n      max_object_expanded_bytes: 10\n",
    ],
)
def test_limits_out_of_range_are_refused(tmp_path: Path, limits: str) -> None:
    path = tmp_path / "streams.yaml"
    body = "streams:\n  s:\n    format: ndjson\n    event_time: ts\n    dedup_key: id\n"
    path.write_text(body + limits)
    with pytest.raises(StreamConfigError):
        load_streams(path)


# --- landing keys ---------------------------------------------------------------------


def test_a_key_with_an_empty_folder_name_is_in_its_hour() -> None:
    name = "robot_telemetry-1-2026-11-21-09-07-00-x.gz"
    parsed = parse_key(f"robot_telemetry/2026/11/21/09//{name}")
    assert parsed is not None
    assert parsed.arrival_hour == datetime(2026, 11, 21, 9, tzinfo=UTC)
    assert parsed.written_at == datetime(2026, 11, 21, 9, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    "key, size, marker",
    [
        ("robot_telemetry/2026/11/21/09/", 0, True),
        ("robot_telemetry/", 0, True),
        ("robot_telemetry/2026/11/21/09/", 5, False),  # has content: read like any object
        ("robot_telemetry/2026/11/21/09/x.gz", 0, False),  # an empty object, not a folder
    ],
)
def test_folder_markers(key: str, size: int, marker: bool) -> None:
    assert is_folder_marker(key, size) is marker
    if key.endswith("/"):
        assert parse_key(key) is None


def test_a_wrapper_over_the_limit_is_one_too_large_entry() -> None:
    small = json.dumps({"Records": [{"eventID": "a"}, {"eventID": "b"}]})
    big = json.dumps({"Records": [{"eventID": str(i), "pad": "p" * 100} for i in range(50)]})
    records = _stream(small + big + small, STREAMS["cloudtrail"], limit=2000)
    assert [
        (r.position, r.error.split(":")[0] if r.error else r.value["eventID"]) for r in records
    ] == [
        (0, "a"),
        (1, "b"),
        (2, "record_too_large"),
        (3, "a"),
        (4, "b"),
    ]
    assert f"record of {len(big)} bytes" in records[2].error  # type: ignore[operator]


def test_a_plain_local_object_over_the_cap_is_refused_unread(tmp_path: Path) -> None:
    landing = LocalStorage(tmp_path / "landing")
    landing.write("s/k.json", b'{"id":1}' * 1000)
    [info] = landing.list("s/")
    landed = fetch_object(landing, info, 4000)
    assert landed.path is None and not landed.readable
    assert landed.refusal == (
        "object_too_large_expanded: the object expands to 8000 bytes, over "
        "max_object_expanded_bytes=4000"
    )
    assert landed.raw_prefix == '{"id":1}' * 1000


def test_malformed_records_cost_their_own_text_not_the_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each failed parse is handed a slice near its record, never the whole window (the
    stdlib's error counts the lines before the error: an object of malformed records was
    quadratic; 262 MB of them ran for more than 9 minutes)."""
    seen: list[int] = []
    real = json_text.raw_decode

    def recording(s: str, idx: int) -> tuple[Any, int]:
        seen.append(len(s) - idx)
        return real(s, idx)

    monkeypatch.setattr(json_text, "raw_decode", recording)
    broken = "".join(json.dumps({"id": i, "nested": {"a": i}})[:-1] + ",}" for i in range(20_000))
    records = _stream(broken, _spec("concatenated_json"), limit=4 << 20)
    assert len(records) == 1 and records[0].error is not None  # no document to resume at
    assert records[0].error.startswith("invalid JSON: Expecting property name")
    assert max(seen) <= 4096 * 4 and len(broken) > 500_000
