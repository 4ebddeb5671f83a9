"""Decoding landed objects and splitting them into records."""

from __future__ import annotations

import gzip
import json

import pytest

from lake.framings.base import RawRecord, UnreadableObject, decode_bytes
from lake.framings.registry import framing_of
from lake.streams import StreamSpec, load_streams

STREAMS = load_streams()


def _spec(fmt: str, records_key: str | None = None) -> StreamSpec:
    return StreamSpec(
        name="s", format=fmt, event_time_field="ts", dedup_key="id", records_key=records_key
    )


def _split(text: str, spec: StreamSpec) -> list[RawRecord]:
    return list(framing_of(spec).split(text))


def test_shipped_streams_use_each_format() -> None:
    assert STREAMS["robot_telemetry"].format == "concatenated_json"
    assert STREAMS["clickstream"].format == "ndjson"
    assert STREAMS["cloudtrail"].format == "json_records"
    assert STREAMS["cloudtrail"].records_key == "Records"


def test_concatenated_json_without_delimiter() -> None:
    docs = [{"id": 1, "a": "x"}, {"id": 2, "b": [1, 2]}, {"id": 3, "c": {"d": None}}]
    texts = [json.dumps(d, separators=(",", ":")) for d in docs]
    records = _split("".join(texts), _spec("concatenated_json"))
    assert [r.value for r in records] == docs
    assert [r.text for r in records] == texts
    assert [r.position for r in records] == [0, 1, 2]
    assert all(r.error is None for r in records)


def test_concatenated_json_with_whitespace_between() -> None:
    text = '  {"id":1}\n{"id":2}  \r\n\t{"id":3}\n'
    records = _split(text, _spec("concatenated_json"))
    assert [r.value for r in records] == [{"id": 1}, {"id": 2}, {"id": 3}]
    assert [r.text for r in records] == ['{"id":1}', '{"id":2}', '{"id":3}']


def test_concatenated_truncated_record_in_the_middle() -> None:
    broken = '{"id":2,"name":"trunc'
    text = '{"id":1}' + broken + '{"id":3,"v":[1,2]}{"id":4}'
    records = _split(text, _spec("concatenated_json"))
    assert len(records) == 4
    assert [r.position for r in records] == [0, 1, 2, 3]
    assert records[0].value == {"id": 1}
    assert records[1].error is not None and records[1].error.startswith("invalid JSON")
    assert records[1].text == broken
    assert records[1].value is None
    assert records[2].value == {"id": 3, "v": [1, 2]}
    assert records[3].value == {"id": 4}
    assert [r.error is None for r in records] == [True, False, True, True]


def test_concatenated_garbage_at_the_end_is_one_error_record() -> None:
    text = '{"id":1}{"id":2}not json at all'
    records = _split(text, _spec("concatenated_json"))
    assert [r.value for r in records[:2]] == [{"id": 1}, {"id": 2}]
    assert len(records) == 3
    assert records[2].error is not None
    assert records[2].text == "not json at all"


def test_ndjson_bad_line_and_blank_lines() -> None:
    lines = ['{"id":1}', "", '{"id":2,"x":', "   ", '{"id":3}', ""]
    records = _split("\n".join(lines), _spec("ndjson"))
    assert [r.position for r in records] == [0, 1, 2]
    assert records[0].value == {"id": 1}
    assert records[1].error is not None and "invalid JSON" in records[1].error
    assert records[1].text == '{"id":2,"x":'
    assert records[2].value == {"id": 3}
    assert records[2].text == '{"id":3}'


def test_ndjson_crlf_lines() -> None:
    records = _split('{"id":1}\r\n{"id":2}\r\n', _spec("ndjson"))
    assert [r.value for r in records] == [{"id": 1}, {"id": 2}]


def test_json_records_unwraps_the_list() -> None:
    recs = [{"eventID": "a", "n": 1}, {"eventID": "b", "n": {"x": [1]}}]
    more = [{"eventID": "c"}]
    text = json.dumps({"Records": recs}) + "\n" + json.dumps({"Records": more})
    records = _split(text, STREAMS["cloudtrail"])
    assert [r.value for r in records] == recs + more
    assert [r.position for r in records] == [0, 1, 2]
    assert [json.loads(r.text) for r in records] == recs + more
    assert all(r.error is None for r in records)


@pytest.mark.parametrize(
    "text",
    [
        '{"Records": [{"a": 1}]}{"Records": [',
        '{"Other": []}',
        '[{"a": 1}]',
        '{"Records": {"a": 1}}',
    ],
)
def test_json_records_wrong_framing_is_unreadable(text: str) -> None:
    with pytest.raises(UnreadableObject):
        _split(text, STREAMS["cloudtrail"])


def test_gzip_is_detected_from_magic_bytes() -> None:
    payload = '{"id":1}{"id":2}'
    assert decode_bytes(gzip.compress(payload.encode())) == payload
    assert decode_bytes(payload.encode()) == payload


def test_utf8_bom_is_dropped_and_non_ascii_kept() -> None:
    assert decode_bytes('\ufeff{"n":"Zoë"}'.encode()) == '{"n":"Zoë"}'


def test_truncated_gzip_is_unreadable() -> None:
    data = gzip.compress(b'{"id":1}' * 200)
    with pytest.raises(UnreadableObject, match="gzip"):
        decode_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableObject, match="gzip"):
        decode_bytes(data[:-4])  # only the trailer missing


def test_invalid_utf8_is_unreadable_with_the_position() -> None:
    data = b'{"id":"ok"}{"id":"\xff\xfe"}'
    with pytest.raises(UnreadableObject, match=r"UTF-8 at byte 18"):
        decode_bytes(data)
    # also inside gzip
    with pytest.raises(UnreadableObject, match="UTF-8"):
        decode_bytes(gzip.compress(data))


def test_binary_junk_is_unreadable() -> None:
    with pytest.raises(UnreadableObject, match="NUL byte at byte 0"):
        decode_bytes(bytes(range(256)))
    with pytest.raises(UnreadableObject, match="UTF-8 at byte 0"):
        decode_bytes(bytes(range(128, 256)))  # no NUL, but no text either
    with pytest.raises(UnreadableObject, match="NUL byte at byte 7"):
        decode_bytes(b'{"a":1}\x00\x01\x02binary')
