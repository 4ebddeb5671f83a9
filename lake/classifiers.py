"""Glue-style classifiers: tell an object's format from a bounded sample of its content.

Like the built-in classifiers of an AWS Glue crawler, only the start of an object is read
(the first 1 MB or 1,000 records by default), so classifying a 100 MB object costs about
what a 1 MB one does. Gzip is recognised by its magic bytes and inflated as it streams
(lake.sample_source); Parquet is recognised by `PAR1` and only its footer is fetched, with
ranged reads (lake.parquet_footer). The framing of text is detected and sampled by its
framing object (lake.framings).
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass, field, replace
from typing import BinaryIO

from lake.framings.base import Framing
from lake.framings.csv_text import Csv
from lake.framings.detection import detect_json
from lake.framings.sampling import Batch, NeedMore, SampleText, Unknown
from lake.hive_types import Struct
from lake.json_text import NotText, skip_ws, strict_utf8
from lake.parquet_footer import PARQUET_MAGIC, RangeFile, UnreadableFooter, read_footer
from lake.sample_source import CHUNK, SampleSource
from lake.storage import Storage

UNKNOWN = "UNKNOWN"


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
    framer: Framing | None = None  # the object that split, sampled and reads such text


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
            return _classify_text(SampleSource(stream, head), limits, records_key_hint)
    return _classify_parquet(storage, key, size, len(head))


def _read_head(stream: BinaryIO, n: int) -> bytes:
    head = b""
    while len(head) < n and (data := stream.read(n - len(head))):
        head += data
    return head


def _classify_parquet(storage: Storage, key: str, size: int, head_bytes: int) -> Classified:
    file = RangeFile(storage, key, size)
    try:
        footer = read_footer(file)
    except UnreadableFooter as exc:
        return Classified(
            UNKNOWN,
            raw_bytes_read=head_bytes + file.bytes_read,
            reason=f"starts with the Parquet magic but its footer is unreadable ({exc})",
        )
    read = head_bytes + file.bytes_read
    return Classified(
        "parquet",
        column_names=footer.column_names,
        schema_hint=footer.schema,
        record_count=footer.rows,
        sampled_bytes=read,
        raw_bytes_read=read,
    )


def _classify_text(source: SampleSource, limits: SampleLimits, hint: str | None) -> Classified:
    """Double the sample until it holds max_records records, reaches max_bytes or covers
    the object; grow it further, up to max_record_bytes, only while the first record is
    unfinished. Each larger sample starts with the smaller one, so the records a clean
    sample of JSON lines or concatenated documents gave are kept and decoding resumes
    after them (see _resumable): each sampled record is decoded once."""
    want = min(CHUNK, limits.max_bytes)
    earlier: Classified | None = None
    while True:
        data = source.take(want)
        at_end = source.at_end()
        try:
            found = _classify_sample(data, at_end, source.error, limits, hint, earlier)
        except Unknown as exc:
            return _unknown(source, len(data), str(exc))
        except NeedMore:
            if at_end:
                return _unknown(source, len(data), f"{source.error} before the first record ends")
            if want >= limits.max_record_bytes:
                reason = f"the first record is larger than max_record_bytes ({limits.max_record_bytes} bytes)"
                return _unknown(source, len(data), reason)
            want = min(2 * want, limits.max_record_bytes)
            continue
        if at_end or len(found.records) >= limits.max_records or want >= limits.max_bytes:
            return _accounted(found, source, len(data))
        earlier = found if _resumable(found) else None
        want = min(2 * want, limits.max_bytes)


# Framings whose sampler reads records one after another from any record's start, with
# nothing carried between records but the batch.
_RESUMABLE_FRAMINGS = ("concatenated", "ndjson")


def _resumable(found: Classified) -> bool:
    """Whether a larger sample may keep `found`'s records and decode on from their end: a
    record that decoded whole in a prefix of the text decodes the same in the whole text,
    but a malformed one (whose handling looks ahead) or a note may not come out the same."""
    return (
        found.framing in _RESUMABLE_FRAMINGS
        and found.bad_records == 0
        and found.reason is None
        and found.records_span > 0
    )


def _classify_sample(
    data: bytes,
    at_end: bool,
    error: str | None,
    limits: SampleLimits,
    hint: str | None,
    earlier: Classified | None = None,
) -> Classified:
    """The classification of one sample; `earlier` (see _resumable), from a shorter
    sample of the same object, lets JSON of its framing resume after its records."""
    whole = at_end and error is None
    text = _to_text(data, whole)
    start = skip_ws(text, 0)
    if start == len(text):
        if whole:
            raise Unknown("empty object")
        raise NeedMore
    sample = SampleText(text, whole, more=not at_end)
    if text[start] not in "{[":
        return _classify_csv(sample, limits)
    found = _classify_json(sample, start, limits, hint, earlier)
    if found.records or not found.bad_records:
        return found
    try:  # it starts with a bracket yet nothing parses: maybe delimited text
        return _classify_csv(sample, limits)
    except Unknown:
        reason = f"starts like JSON but none of its {found.bad_records} record(s) parse"
        raise Unknown(reason) from None


def _to_text(data: bytes, whole: bool) -> str:
    """Strict UTF-8 without a BOM; a character cut by the sample's end is dropped."""
    try:
        return strict_utf8(data, whole)
    except NotText as exc:
        raise Unknown(str(exc)) from None


def _unknown(source: SampleSource, sampled: int, reason: str) -> Classified:
    return Classified(
        UNKNOWN,
        source.compression,
        sampled_bytes=sampled,
        raw_bytes_read=source.raw_bytes_read,
        reason=reason,
    )


def _accounted(found: Classified, source: SampleSource, sampled: int) -> Classified:
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


def _classify_json(
    sample: SampleText,
    start: int,
    limits: SampleLimits,
    hint: str | None,
    earlier: Classified | None = None,
) -> Classified:
    batch = Batch(limits.max_records)
    label, framer = detect_json(sample, start, hint)
    if earlier is not None and earlier.framing == label:
        batch.records, batch.span = list(earlier.records), earlier.records_span
        start = skip_ws(sample.text, batch.span)
    framer.sample(sample, start, batch)
    if batch.stop == "cut" and not batch.records:
        raise NeedMore
    complete = sample.whole and batch.stop is None
    return Classified(
        "json",
        framing=label,
        records_key=framer.records_key,
        records=batch.records,
        record_count=len(batch.records) + batch.bad if complete else None,
        records_span=batch.span,
        complete=complete,
        bad_records=batch.bad,
        reason="; ".join(batch.notes) or None,
        framer=framer,
    )


def _classify_csv(sample: SampleText, limits: SampleLimits) -> Classified:
    framer = Csv.detect(sample, limits.max_records)
    if framer is None:
        raise Unknown(
            "neither JSON nor delimited text: no delimiter among , | tab ; splits every line"
            " into the same number (more than one) of fields"
        )
    batch = Batch(limits.max_records)
    framer.sample(sample, 0, batch)
    complete = sample.whole and batch.stop is None
    return Classified(
        "csv",
        delimiter=framer.delimiter,
        has_header=framer.has_header,
        column_names=list(framer.columns),
        records=batch.records,
        record_count=len(batch.records) if complete else None,
        complete=complete,
        framer=framer,
    )
