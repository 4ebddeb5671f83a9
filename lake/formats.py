"""Turning a landed object's bytes into raw records, keeping each record's own text.

Firehose concatenates JSON documents with no delimiter; clickstreams are one document a
line; CloudTrail wraps records in {"Records": [...]}. Every record comes back with its
position and raw text so a bad one can be quarantined while the rest of the object is
processed.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lake.json_text import NestedTooDeep, NotText, raw_decode, resync, skip_ws, strict_utf8
from lake.record_limits import TOO_DEEP
from lake.streams import StreamSpec

TOO_DEEP_TO_PARSE = f"{TOO_DEEP}: deeper than the JSON parser's recursion allows"

GZIP_MAGIC = b"\x1f\x8b"


class UnreadableObject(Exception):
    """The whole object cannot be read (bad gzip, not UTF-8, not the declared framing)."""


@dataclass(frozen=True)
class RawRecord:
    position: int  # 0-based ordinal of the record within its object
    text: str  # the record's own text, as it appeared (re-serialised for wrapped records)
    value: Any = None  # the parsed JSON value when error is None
    error: str | None = None


def decode_bytes(data: bytes) -> str:
    """Gunzip when the bytes say gzip, then decode strict UTF-8 (a BOM is dropped)."""
    if data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise UnreadableObject(f"gzip stream is corrupt or truncated: {exc}") from exc
    try:
        return strict_utf8(data)
    except NotText as exc:
        raise UnreadableObject(str(exc)) from exc


def iter_records(text: str, spec: StreamSpec) -> Iterator[RawRecord]:
    """Yield the records of one decoded object according to the stream's declared format."""
    if spec.format == "ndjson":
        yield from _ndjson(text)
    elif spec.format == "json_records":
        yield from _wrapped(text, spec.records_key or "Records")
    else:
        yield from _concatenated(text)


def _ndjson(text: str) -> Iterator[RawRecord]:
    position = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            yield RawRecord(position, line, json.loads(line))
        except json.JSONDecodeError as exc:
            yield RawRecord(position, line, error=f"invalid JSON: {exc.msg} (column {exc.colno})")
        except RecursionError:
            yield RawRecord(position, line, error=TOO_DEEP_TO_PARSE)
        position += 1


def _concatenated(text: str) -> Iterator[RawRecord]:
    """Documents back to back (`{..}{..}`), whitespace allowed between them.

    After a broken document, reading resumes at the next `{` from which a whole document
    parses and is followed by another document, whitespace or the end.
    """
    pos = skip_ws(text, 0)
    position = 0
    while pos < len(text):
        try:
            value, end = raw_decode(text, pos)
        except NestedTooDeep as exc:
            resume = exc.end or len(text)
            yield RawRecord(position, text[pos:resume], error=TOO_DEEP_TO_PARSE)
        except json.JSONDecodeError as exc:
            resume = resync(text, pos + 1)
            yield RawRecord(
                position,
                text[pos:resume],
                error=f"invalid JSON: {exc.msg} (offset {exc.pos - pos})",
            )
        else:
            resume = end
            yield RawRecord(position, text[pos:end], value)
        position += 1
        pos = skip_ws(text, resume)


def _wrapped(text: str, records_key: str) -> Iterator[RawRecord]:
    position = 0
    for doc in _concatenated(text):
        if doc.error is not None:
            raise UnreadableObject(f"document {doc.position} is not valid JSON ({doc.error})")
        records = doc.value.get(records_key) if isinstance(doc.value, dict) else None
        if not isinstance(records, list):
            raise UnreadableObject(
                f"document {doc.position} has no list under {records_key!r}: not this stream's format"
            )
        for record in records:
            yield RawRecord(position, json.dumps(record, separators=(",", ":")), record)
            position += 1
