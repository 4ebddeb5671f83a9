"""Glue-style classifiers: tell an object's format from a bounded sample of its content.

Like the built-in classifiers of an AWS Glue crawler, only the start of an object is read
(the first 1 MB or 1,000 records by default), so classifying a 100 MB object costs about
what a 1 MB one does. Gzip is recognised by its magic bytes and inflated as it streams;
Parquet is recognised by `PAR1` and only its footer is fetched, with ranged reads.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zlib
from contextlib import closing
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from lake.hive_types import Array, HiveType, Struct
from lake.json_text import NestedTooDeep, NotText, decode_near, resync, skip_ws, strict_utf8
from lake.storage import Storage

UNKNOWN = "UNKNOWN"
CHUNK = 64 * 1024
GZIP_MAGIC = b"\x1f\x8b"
GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip header and trailer around the deflate stream
PARQUET_MAGIC = b"PAR1"
CSV_DELIMITERS = (",", "|", "\t", ";")
MAX_WRAPPER_KEYS = 4  # {"Records": [...]} may carry a little metadata beside its list

_JSON_LITERALS = ("true", "false", "null", "NaN", "Infinity", "-Infinity")
_NUMBER_TAIL = re.compile(r"[0-9+\-.eE]+")
_INT = re.compile(r"[+-]?[0-9]{1,18}")  # longer integers do not fit a bigint
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ARROW_SCALARS: dict[pa.DataType, str] = {
    pa.bool_(): "boolean",
    pa.int8(): "int",
    pa.int16(): "int",
    pa.int32(): "int",
    pa.uint8(): "int",
    pa.uint16(): "int",
    pa.int64(): "bigint",
    pa.uint32(): "bigint",
    pa.float16(): "double",
    pa.float32(): "double",
    pa.float64(): "double",
    pa.string(): "string",
    pa.large_string(): "string",
    pa.date32(): "date",
    pa.date64(): "date",
}


@dataclass(frozen=True)
class SampleLimits:
    max_bytes: int = 1_048_576  # uncompressed bytes sampled per object (Glue: first 1 MB)
    max_records: int = 1000  # records sampled per object (Glue: 1,000)
    # Reading goes past max_bytes only to finish the first record; beyond this: UNKNOWN.
    max_record_bytes: int = 64 * 2**20


DEFAULT_LIMITS = SampleLimits()


@dataclass
class Classified:
    classification: str  # "json" | "csv" | "parquet" | "UNKNOWN"
    compression: str = "none"  # "gzip" | "none"
    # json: "concatenated" | "ndjson" | "array" | "wrapper" | "single"; None otherwise
    framing: str | None = None
    records_key: str | None = None  # "wrapper": the key holding the record list
    delimiter: str | None = None  # csv
    has_header: bool | None = None  # csv
    column_names: list[str] = field(default_factory=list)  # csv, parquet
    records: list[dict] = field(default_factory=list)  # the sampled records; empty for parquet
    schema_hint: Struct | None = None  # parquet: the footer's schema as Hive types
    record_count: int | None = None  # exact when known, else None
    sampled_bytes: int = 0  # uncompressed bytes consumed
    raw_bytes_read: int = 0  # bytes read from storage, as stored
    raw_bytes_consumed: int = 0  # of those, the ones the sample was decoded from
    records_span: int = 0  # characters of the sample the collected records cover (0: unknown)
    complete: bool = False  # the whole object was consumed: records are all of them
    bad_records: int = 0  # sampled records that did not parse (not in `records`)
    reason: str | None = None  # why UNKNOWN (always set then), or a note


def classify_object(
    storage: Storage,
    key: str,
    size: int,
    limits: SampleLimits = DEFAULT_LIMITS,
    records_key_hint: str | None = None,
) -> Classified:
    """Classify one object from a sample of its content.

    Raises only what the storage raises (ObjectNotFound); content no classifier accepts
    comes back as UNKNOWN with a reason.
    """
    if size == 0:
        return Classified(UNKNOWN, reason="empty object")
    with closing(storage.open(key)) as stream:
        head = _read_head(stream, len(PARQUET_MAGIC))
        if head != PARQUET_MAGIC:
            return _classify_text(_Source(stream, head), limits, records_key_hint)
    return _classify_parquet(storage, key, size, len(head))


def _read_head(stream: BinaryIO, n: int) -> bytes:
    head = b""
    while len(head) < n and (data := stream.read(n - len(head))):
        head += data
    return head


# --- Parquet: the footer only ---------------------------------------------------------


class _RangeFile(io.RawIOBase):
    """A read-only, seekable file over ranged reads, so pyarrow fetches only what it needs."""

    def __init__(self, storage: Storage, key: str, size: int) -> None:
        super().__init__()
        self._storage, self._key, self._size = storage, key, size
        self._pos = 0
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        length = min(len(buffer), self._size - self._pos)
        if length <= 0:
            return 0
        data = self._storage.read_range(self._key, self._pos, length)
        buffer[: len(data)] = data
        self._pos += len(data)
        self.bytes_read += len(data)
        return len(data)


def _classify_parquet(storage: Storage, key: str, size: int, head_bytes: int) -> Classified:
    file = _RangeFile(storage, key, size)
    try:
        with pq.ParquetFile(file) as parquet:
            schema, rows = parquet.schema_arrow, parquet.metadata.num_rows
    except pa.ArrowException as exc:
        return Classified(
            UNKNOWN,
            raw_bytes_read=head_bytes + file.bytes_read,
            reason=f"starts with the Parquet magic but its footer is unreadable ({exc})",
        )
    read = head_bytes + file.bytes_read
    return Classified(
        "parquet",
        column_names=schema.names,
        schema_hint=Struct({f.name: _hive_type(f.type) for f in schema}),
        record_count=rows,
        sampled_bytes=read,
        raw_bytes_read=read,
    )


def _hive_type(arrow: pa.DataType) -> HiveType:
    """Arrow -> Hive as Glue maps a Parquet schema; what Hive cannot hold becomes string."""
    if pa.types.is_struct(arrow):
        fields = (arrow.field(i) for i in range(arrow.num_fields))
        return Struct({f.name: _hive_type(f.type) for f in fields})
    if pa.types.is_list(arrow) or pa.types.is_large_list(arrow):
        return Array(_hive_type(arrow.value_type))
    if pa.types.is_dictionary(arrow):
        return _hive_type(arrow.value_type)
    if pa.types.is_decimal128(arrow):
        return f"decimal({arrow.precision},{arrow.scale})"
    if pa.types.is_timestamp(arrow):
        return "timestamp"
    return _ARROW_SCALARS.get(arrow, "string")


# --- Text: the sample -----------------------------------------------------------------


class _Source:
    """An object's bytes, inflated on the fly when they start with the gzip magic."""

    def __init__(self, stream: BinaryIO, head: bytes) -> None:
        self.compression = "gzip" if head.startswith(GZIP_MAGIC) else "none"
        self.raw_bytes_read = len(head)
        self.error: str | None = None  # why a gzip stream ended early
        self._stream = stream
        self._input = head
        self._inflater = zlib.decompressobj(GZIP_WBITS) if self.compression == "gzip" else None
        self._taken = bytearray()
        self._ahead = b""
        self._ended = False

    @property
    def consumed(self) -> int:
        """Stored bytes that went into what was decoded so far (read-ahead excluded)."""
        return self.raw_bytes_read - len(self._input)

    def take(self, n: int) -> bytes:
        """The object's first n uncompressed bytes (fewer when it is shorter)."""
        while len(self._taken) < n and (data := self._read(n - len(self._taken))):
            self._taken += data
        return bytes(self._taken)

    def at_end(self) -> bool:
        """Whether the bytes taken so far are all there is."""
        if not self._ahead:
            self._ahead = self._read(1)
        return not self._ahead

    def _read(self, n: int) -> bytes:
        if self._ahead:
            data, self._ahead = self._ahead[:n], self._ahead[n:]
            return data
        while not self._ended:
            if not self._input and not self._refill():
                self._finish()
            elif data := self._decompress(n):
                return data
        return b""

    def _refill(self) -> bool:
        self._input = self._stream.read(CHUNK)
        self.raw_bytes_read += len(self._input)
        return bool(self._input)

    def _decompress(self, n: int) -> bytes:
        if self._inflater is None:
            data, self._input = self._input[:n], self._input[n:]
            return data
        if self._inflater.eof:  # gzip allows several members back to back
            self._inflater = zlib.decompressobj(GZIP_WBITS)
        try:
            # Bounded output: a small, highly compressed input cannot balloon in memory.
            data = self._inflater.decompress(self._input, n)
        except zlib.error as exc:
            self.error = f"the gzip stream is corrupt ({exc})"
            self._ended = True
            return b""
        self._input = self._inflater.unconsumed_tail or self._inflater.unused_data
        return data

    def _finish(self) -> None:
        self._ended = True
        if self._inflater is not None and not self._inflater.eof:
            self.error = "the gzip stream is truncated"


class _Unknown(Exception):
    """Content no classifier accepts; the message is the reason."""


class _NeedMore(Exception):
    """The sample ends before its first record does."""


class _Cut(Exception):
    """The sample ends inside the value being decoded."""


@dataclass(frozen=True)
class _Text:
    text: str
    whole: bool  # the entire object, so a record cut by its end is malformed
    more: bool  # the object goes on past this sample


def _classify_text(source: _Source, limits: SampleLimits, hint: str | None) -> Classified:
    """Double the sample (so re-parsing costs at most twice the final size) until it holds
    max_records records, reaches max_bytes or covers the object; grow it further, up to
    max_record_bytes, only while the first record is unfinished."""
    want = min(CHUNK, limits.max_bytes)
    while True:
        data = source.take(want)
        at_end = source.at_end()
        try:
            found = _classify_sample(data, at_end, source.error, limits, hint)
        except _Unknown as exc:
            return _unknown(source, len(data), str(exc))
        except _NeedMore:
            if at_end:
                return _unknown(source, len(data), f"{source.error} before the first record ends")
            if want >= limits.max_record_bytes:
                reason = f"the first record is larger than max_record_bytes ({limits.max_record_bytes} bytes)"
                return _unknown(source, len(data), reason)
            want = min(2 * want, limits.max_record_bytes)
            continue
        if at_end or len(found.records) >= limits.max_records or want >= limits.max_bytes:
            return _accounted(found, source, len(data))
        want = min(2 * want, limits.max_bytes)


def _classify_sample(
    data: bytes, at_end: bool, error: str | None, limits: SampleLimits, hint: str | None
) -> Classified:
    whole = at_end and error is None
    text = _to_text(data, whole)
    start = skip_ws(text, 0)
    if start == len(text):
        if whole:
            raise _Unknown("empty object")
        raise _NeedMore
    sample = _Text(text, whole, more=not at_end)
    if text[start] not in "{[":
        return _classify_csv(sample, limits)
    found = _classify_json(sample, start, limits, hint)
    if found.records or not found.bad_records:
        return found
    try:  # it starts with a bracket yet nothing parses: maybe delimited text
        return _classify_csv(sample, limits)
    except _Unknown:
        reason = f"starts like JSON but none of its {found.bad_records} record(s) parse"
        raise _Unknown(reason) from None


def _to_text(data: bytes, whole: bool) -> str:
    """Strict UTF-8 without a BOM; a character cut by the sample's end is dropped."""
    try:
        return strict_utf8(data, whole)
    except NotText as exc:
        raise _Unknown(str(exc)) from None


def _unknown(source: _Source, sampled: int, reason: str) -> Classified:
    return Classified(
        UNKNOWN,
        source.compression,
        sampled_bytes=sampled,
        raw_bytes_read=source.raw_bytes_read,
        reason=reason,
    )


def _accounted(found: Classified, source: _Source, sampled: int) -> Classified:
    notes = [found.reason] if found.reason else []
    if source.error:
        notes.append(f"{source.error}; classified the {sampled} bytes before it")
    return replace(
        found,
        compression=source.compression,
        sampled_bytes=sampled,
        raw_bytes_read=source.raw_bytes_read,
        raw_bytes_consumed=source.consumed,
        reason="; ".join(notes) or None,
    )


# --- JSON -----------------------------------------------------------------------------


@dataclass
class _Batch:
    """The records gathered from a sample and, when gathering stopped early, why."""

    limit: int
    records: list[dict] = field(default_factory=list)
    bad: int = 0
    # "limit": max_records taken; "cut": the sample ends inside a record; "error": see notes
    stop: str | None = None
    notes: list[str] = field(default_factory=list)
    span: int = 0  # text offset just after the last record taken, where it is known

    def add(self, value: Any) -> None:
        if isinstance(value, dict):
            self.records.append(value)
        else:
            self.bad += 1  # a record is a JSON object

    def full(self) -> bool:
        """True, with stop set to "limit", once max_records records are in."""
        if len(self.records) >= self.limit:
            self.stop = "limit"
        return self.stop == "limit"


def _classify_json(sample: _Text, start: int, limits: SampleLimits, hint: str | None) -> Classified:
    batch = _Batch(limits.max_records)
    records_key = None
    if sample.text[start] == "[":
        framing = "array"
        end = _collect_elements(sample, start, batch, "top-level array")
        if end is not None:
            _check_after_array(sample, end, batch)
    else:
        framing, records_key = _object_framing(sample, start, hint)
        if records_key is not None:
            _collect_wrappers(sample, start, records_key, batch)
        elif framing == "ndjson":
            _collect_ndjson(sample, start, batch)
        else:
            _collect_concatenated(sample, start, batch)
    if batch.stop == "cut" and not batch.records:
        raise _NeedMore
    complete = sample.whole and batch.stop is None
    return Classified(
        "json",
        framing=framing,
        records_key=records_key,
        records=batch.records,
        record_count=len(batch.records) + batch.bad if complete else None,
        records_span=batch.span,
        complete=complete,
        bad_records=batch.bad,
        reason="; ".join(batch.notes) or None,
    )


def _object_framing(sample: _Text, start: int, hint: str | None) -> tuple[str, str | None]:
    """(framing, records_key) of a text of objects, judged by the first one that parses."""
    pos = start
    while pos < len(sample.text):
        try:
            doc, end = _decode(sample, pos)
        except _Cut:
            opened = _open_wrapper(sample, pos, hint)
            if opened is None:
                raise _NeedMore from None
            return "wrapper", opened[0]
        except json.JSONDecodeError as exc:
            pos = _after_bad(sample, pos, exc)
            continue
        records_key = _wrapper_key(doc, hint)
        if records_key is not None:
            return "wrapper", records_key
        return _framing_after(sample, pos, end), None
    return "concatenated", None  # nothing parses: the collector counts the bad records


def _framing_after(sample: _Text, start: int, end: int) -> str:
    """What follows the first record decides: a newline and `{` for ndjson, `{` on the same
    line for concatenated, nothing for a single object."""
    text = sample.text
    after = skip_ws(text, end)
    if after == len(text):
        if sample.more:
            raise _NeedMore
        return "single"
    one_line = text.find("\n", start, end) == -1
    if text[after] == "{" and one_line and text.find("\n", end, after) != -1:
        return "ndjson"
    return "concatenated"


def _wrapper_key(doc: dict, hint: str | None) -> str | None:
    """The key of a document's only list of objects, when the document is a small wrapper."""
    if len(doc) > MAX_WRAPPER_KEYS:
        return None
    # The stream's declared key holds its records even when some of them are not objects.
    keys = [k for k, v in doc.items() if (k == hint and isinstance(v, list)) or _is_record_list(v)]
    if len(keys) == 1 and hint in (None, keys[0]):
        return keys[0]
    return None


def _is_record_list(value: Any) -> bool:
    if not isinstance(value, list) or not value:
        return False
    return all(isinstance(item, dict) for item in value)


def _open_wrapper(sample: _Text, start: int, hint: str | None) -> tuple[str, int] | None:
    """For an object the sample's end cuts: (key, where its list starts) when the cut falls
    in a list of objects under one of its first few keys, after only complete values."""
    text = sample.text
    i = skip_ws(text, start + 1)
    try:
        for _ in range(MAX_WRAPPER_KEYS):
            if not text.startswith('"', i):
                return None
            key, i = _decode(sample, i)
            i = skip_ws(text, i)
            if not text.startswith(":", i):
                return None
            i = skip_ws(text, i + 1)
            try:
                value, i = _decode(sample, i)
            except _Cut:  # i is still where the cut value starts
                lists_objects = text.startswith("[", i) and text.startswith(
                    "{", skip_ws(text, i + 1)
                )
                return (key, i) if lists_objects and hint in (None, key) else None
            if _is_record_list(value):
                return None  # the record list is complete, so the cut is in something else
            i = skip_ws(text, i)
            if not text.startswith(",", i):
                return None
            i = skip_ws(text, i + 1)
    except (_Cut, json.JSONDecodeError):
        return None
    return None


def _collect_wrappers(sample: _Text, start: int, records_key: str, batch: _Batch) -> None:
    """Records from the `records_key` list of each wrapper document (one or several)."""
    text = sample.text
    i = start
    while i < len(text) and not batch.full():
        try:
            doc, end = _decode(sample, i)
        except _Cut:
            opened = _open_wrapper(sample, i, records_key)
            if opened is None:
                batch.stop = "cut"
            else:
                _collect_elements(sample, opened[1], batch, f"{records_key!r} list")
            return
        except json.JSONDecodeError as exc:
            batch.bad += 1
            i = _after_bad(sample, i, exc)
            continue
        _take_list(doc, records_key, batch)
        i = skip_ws(text, end)


def _take_list(doc: Any, records_key: str, batch: _Batch) -> None:
    records = doc.get(records_key) if isinstance(doc, dict) else None
    if not isinstance(records, list):
        batch.bad += 1
        return
    room = batch.limit - len(batch.records)
    if len(records) > room:
        batch.stop = "limit"
    for value in records[:room]:
        batch.add(value)


def _collect_elements(sample: _Text, start: int, batch: _Batch, what: str) -> int | None:
    """Records from the list at `start`; where the list ends, or None when stopped first."""
    try:
        return _collect_list(sample, start, batch)
    except json.JSONDecodeError as exc:
        batch.bad += 1
        batch.stop = "error"
        batch.notes.append(
            f"malformed JSON at character {exc.pos}; the rest of the {what} was not read"
        )
        return None


def _collect_list(sample: _Text, start: int, batch: _Batch) -> int | None:
    text = sample.text
    i = skip_ws(text, start + 1)
    if text.startswith("]", i):
        return i + 1
    while not batch.full():
        try:
            value, i = _decode(sample, i)
        except _Cut:
            batch.stop = "cut"
            return None
        batch.add(value)
        i = skip_ws(text, i)
        if text.startswith("]", i):
            return i + 1
        if i == len(text) and not sample.whole:
            batch.stop = "cut"
            return None
        if not text.startswith(",", i):
            raise json.JSONDecodeError("Expecting ',' delimiter", text, i)
        i = skip_ws(text, i + 1)
    return None


def _check_after_array(sample: _Text, end: int, batch: _Batch) -> None:
    """Only one top-level array is read: say so when more text follows it."""
    if skip_ws(sample.text, end) < len(sample.text):
        batch.stop = "error"
        batch.notes.append(
            f"the text after the top-level array (from character {end}) was not read"
        )


def _collect_concatenated(sample: _Text, start: int, batch: _Batch) -> None:
    """Documents back to back, whitespace allowed between; after a malformed one, reading
    resumes at the next `{` from which a document parses."""
    text = sample.text
    i = start
    while i < len(text) and not batch.full():
        try:
            value, end = _decode(sample, i)
        except _Cut:
            batch.stop = "cut"
            return
        except json.JSONDecodeError as exc:
            batch.bad += 1
            i = _after_bad(sample, i, exc)
            continue
        batch.add(value)
        batch.span = end
        i = skip_ws(text, end)


def _collect_ndjson(sample: _Text, start: int, batch: _Batch) -> None:
    text = sample.text
    end = len(text) if sample.whole else text.rfind("\n") + 1  # the last line may be cut
    # Split on "\n" only: U+2028 and friends may stand unescaped inside JSON strings.
    offset = start
    for line in text[start:end].split("\n"):
        offset += len(line) + 1
        if not line.strip():
            continue
        if batch.full():
            return
        try:
            batch.add(json.loads(line))
        except (json.JSONDecodeError, RecursionError):
            batch.bad += 1
        batch.span = offset
    if skip_ws(text, end) < len(text):
        batch.stop = "cut"


def _after_bad(sample: _Text, pos: int, exc: json.JSONDecodeError) -> int:
    """Where reading goes on after the malformed document at pos: past its end when it is
    only too deep (well formed), else at the next document (see resync)."""
    if isinstance(exc, NestedTooDeep) and exc.end is not None:
        return skip_ws(sample.text, exc.end)
    return _resync(sample, pos + 1)


def _resync(sample: _Text, start: int) -> int:
    """The next `{` from which a document decodes (or is cut by the sample's end)."""
    return resync(sample.text, start, lambda _text, pos: _decode(sample, pos), (_Cut,))


def _decode(sample: _Text, pos: int) -> tuple[Any, int]:
    """The JSON value at pos and where it ends; _Cut when the sample's end cuts it."""
    try:
        return decode_near(sample.text, pos)
    except NestedTooDeep as exc:
        if exc.end is None and not sample.whole:
            raise _Cut from None
        raise
    except json.JSONDecodeError as exc:
        if not sample.whole and _ends_inside(sample.text, exc):
            raise _Cut from None
        raise


_LONGEST_CUT_TAIL = 4096  # a cut number or literal is shorter than this


def _ends_inside(text: str, exc: json.JSONDecodeError) -> bool:
    """Whether a decoding error comes from the text ending mid-value rather than bad JSON."""
    if exc.msg.startswith("Unterminated string"):
        return True
    if skip_ws(text, exc.pos) == len(text):
        return True
    if len(text) - exc.pos > _LONGEST_CUT_TAIL:
        return False  # (no copy of the rest: a sample of many bad records stays linear)
    tail = text[exc.pos :]
    if exc.msg.startswith("Invalid \\uXXXX escape"):
        return len(tail) <= len("u1234\\u1234")  # a cut escape or surrogate pair
    return _NUMBER_TAIL.fullmatch(tail) is not None or any(
        literal.startswith(tail) for literal in _JSON_LITERALS
    )


# --- CSV ------------------------------------------------------------------------------


def _classify_csv(sample: _Text, limits: SampleLimits) -> Classified:
    found = _best_delimiter(sample, limits.max_records + 1)
    if found is None:
        raise _Unknown(
            "neither JSON nor delimited text: no delimiter among , | tab ; splits every line"
            " into the same number (more than one) of fields"
        )
    delimiter, rows, all_rows = found
    has_header = _has_header(rows)
    names = rows[0] if has_header else [f"col{n}" for n in range(1, len(rows[0]) + 1)]
    data = rows[1:] if has_header else rows
    if len(data) > limits.max_records:
        data, all_rows = data[: limits.max_records], False
    records = [dict(zip(names, map(_typed, row), strict=True)) for row in data]
    return Classified(
        "csv",
        delimiter=delimiter,
        has_header=has_header,
        column_names=list(names),
        records=records,
        record_count=len(records) if all_rows else None,
        complete=all_rows,
    )


def _best_delimiter(sample: _Text, limit: int) -> tuple[str, list[list[str]], bool] | None:
    """The delimiter giving every row the same number (>1) of fields, the most wins;
    with its rows and whether they are all the object's rows."""
    best = None
    for delimiter in CSV_DELIMITERS:
        try:
            rows, all_rows = _read_rows(sample, delimiter, limit)
        except csv.Error:  # e.g. a field over the csv module's size limit
            continue
        if not rows:
            raise _NeedMore
        width = len(rows[0])
        consistent = width > 1 and all(len(row) == width for row in rows)
        if consistent and (best is None or width > len(best[1][0])):
            best = (delimiter, rows, all_rows)
    return best


def _read_rows(sample: _Text, delimiter: str, limit: int) -> tuple[list[list[str]], bool]:
    reader = csv.reader(io.StringIO(sample.text, newline=""), delimiter=delimiter)
    rows = list(islice((row for row in reader if row), limit + 1))
    if len(rows) > limit:
        return rows[:limit], False
    if not sample.whole and rows:
        rows.pop()  # the sample may end inside its last row
    return rows, sample.whole


def _has_header(rows: list[list[str]]) -> bool:
    """Glue's test: a first row of distinct, non-empty names that are not numbers or
    booleans, above rows that differ from it: a column of numbers/booleans or, when all is
    text, identifier-like names above a column whose values never look like one."""
    first, columns = rows[0], list(zip(*rows[1:], strict=True))
    if not columns or len(set(first)) < len(first):
        return False
    if not all(name.strip() and isinstance(_typed(name), str) for name in first):
        return False
    if any(_all_typed(column) for column in columns):
        return True
    names_are_identifiers = all(_IDENTIFIER.fullmatch(name) for name in first)
    return names_are_identifiers and any(_no_identifiers(column) for column in columns)


def _all_typed(column: tuple[str, ...]) -> bool:
    values = [v for v in column if v]
    return bool(values) and not any(isinstance(_typed(v), str) for v in values)


def _no_identifiers(column: tuple[str, ...]) -> bool:
    values = [v for v in column if v]
    return bool(values) and not any(_IDENTIFIER.fullmatch(v) for v in values)


def _typed(value: str) -> Any:
    """A CSV cell typed as Glue reads it: empty -> None, integer, decimal, boolean, text."""
    if value == "":
        return None
    if _INT.fullmatch(value):
        return int(value)
    if _FLOAT.fullmatch(value):
        return float(value)
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value
