"""Records wrapped in documents' lists: `{"Records": [...]}`, as CloudTrail writes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from lake.framings.base import TOO_LARGE, Framing, RawRecord, UnreadableObject
from lake.framings.concatenated_json import split_concatenated
from lake.framings.json_window import stream_concatenated
from lake.framings.sampling import Batch, Cut, SampleText, after_bad, collect_elements, decode
from lake.json_text import skip_ws
from lake.sql_text import quote_identifier, sql_string

if TYPE_CHECKING:
    from lake.streams import StreamSpec

MAX_WRAPPER_KEYS = 4  # {"Records": [...]} may carry a little metadata beside its list


@dataclass(frozen=True)
class RecordsWrapped(Framing):
    name = "json_records"
    records_key: str = "Records"

    @classmethod
    def for_stream(cls, spec: StreamSpec) -> RecordsWrapped:
        return cls(spec.records_key or "Records")

    def split(self, text: str) -> Iterator[RawRecord]:
        return self._unwrap(split_concatenated(text))

    def split_file(self, fh: BinaryIO, max_record_bytes: int) -> Iterator[RawRecord]:
        """The limit is the wrapping document's: it is parsed whole."""
        return self._unwrap(stream_concatenated(fh, max_record_bytes))

    def duckdb_reader(self, max_object_size: int) -> str:
        """The wrapping documents read by DuckDB's reader (the limit is theirs), only their
        list under the key (typed JSON[]: each document parsed once, no copy of its text),
        unnested in order; a JSON null element stays the record `null`. A document that is
        not an object with a list under the key raises, so the file goes the Python way,
        which refuses it with its reason."""
        column = quote_identifier(self.records_key)
        file = "_file" if self.records_key != "_file" else "_file_"  # not the key's column
        return (
            f"SELECT {file} AS filename, coalesce(record::VARCHAR, 'null') AS raw FROM ("
            f"SELECT {file}, unnest(CASE WHEN {column} IS NULL THEN "
            "error('a document has no list under the records key') "
            f"ELSE {column} END) AS record "
            f"FROM read_json(?, format='unstructured', records=true, "
            f"columns={{{sql_string(self.records_key)}: 'JSON[]'}}, compression='none', "
            f"maximum_object_size={int(max_object_size)}, filename='{file}'))"
        )

    def _unwrap(self, docs: Iterator[RawRecord]) -> Iterator[RawRecord]:
        position = 0
        for doc in docs:
            if doc.error is not None and doc.error.startswith(TOO_LARGE):
                # a wrapper over the limit is set aside whole: its records cannot be reached
                yield RawRecord(position, doc.text, error=doc.error)
                position += 1
                continue
            if doc.error is not None:
                raise UnreadableObject(f"document {doc.position} is not valid JSON ({doc.error})")
            records = doc.value.get(self.records_key) if isinstance(doc.value, dict) else None
            if not isinstance(records, list):
                raise UnreadableObject(
                    f"document {doc.position} has no list under {self.records_key!r}: "
                    "not this stream's format"
                )
            for record in records:
                yield RawRecord(position, json.dumps(record, separators=(",", ":")), record)
                position += 1

    def sample(self, sample: SampleText, start: int, batch: Batch) -> None:
        """Records from the `records_key` list of each wrapper document (one or several)."""
        text = sample.text
        i = start
        while i < len(text) and not batch.full():
            try:
                doc, end = decode(sample, i)
            except Cut:
                opened = open_wrapper(sample, i, self.records_key)
                if opened is None:
                    batch.stop = "cut"
                else:
                    collect_elements(sample, opened[1], batch, f"{self.records_key!r} list")
                return
            except json.JSONDecodeError as exc:
                batch.bad += 1
                i = after_bad(sample, i, exc)
                continue
            self._take_list(doc, batch)
            i = skip_ws(text, end)

    def _take_list(self, doc: Any, batch: Batch) -> None:
        records = doc.get(self.records_key) if isinstance(doc, dict) else None
        if not isinstance(records, list):
            batch.bad += 1
            return
        room = batch.limit - len(batch.records)
        if len(records) > room:
            batch.stop = "limit"
        for value in records[:room]:
            batch.add(value)


def wrapper_key(doc: dict, hint: str | None) -> str | None:
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


def open_wrapper(sample: SampleText, start: int, hint: str | None) -> tuple[str, int] | None:
    """For an object the sample's end cuts: (key, where its list starts) when the cut falls
    in a list of objects under one of its first few keys, after only complete values."""
    text = sample.text
    i = skip_ws(text, start + 1)
    try:
        for _ in range(MAX_WRAPPER_KEYS):
            if not text.startswith('"', i):
                return None
            key, i = decode(sample, i)
            i = skip_ws(text, i)
            if not text.startswith(":", i):
                return None
            i = skip_ws(text, i + 1)
            try:
                value, i = decode(sample, i)
            except Cut:  # i is still where the cut value starts
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
    except (Cut, json.JSONDecodeError):
        return None
    return None
