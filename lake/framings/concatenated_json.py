"""Concatenated JSON: documents back to back (`{..}{..}`), as Firehose writes by default."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from lake.framings.base import TOO_DEEP_TO_PARSE, Framing, RawRecord, json_objects_reader
from lake.framings.json_window import stream_concatenated
from lake.framings.sampling import Batch, Cut, SampleText, after_bad, decode
from lake.json_text import NestedTooDeep, decode_near, resync, skip_ws


@dataclass(frozen=True)
class ConcatenatedJson(Framing):
    name = "concatenated_json"

    def split(self, text: str) -> Iterator[RawRecord]:
        return split_concatenated(text)

    def split_file(self, fh: BinaryIO, max_record_bytes: int) -> Iterator[RawRecord]:
        return stream_concatenated(fh, max_record_bytes)

    def sample(self, sample: SampleText, start: int, batch: Batch) -> None:
        """Documents back to back, whitespace allowed between; after a malformed one,
        reading resumes at the next `{` from which a document parses."""
        text = sample.text
        i = start
        while i < len(text) and not batch.full():
            try:
                value, end = decode(sample, i)
            except Cut:
                batch.stop = "cut"
                return
            except json.JSONDecodeError as exc:
                batch.bad += 1
                i = after_bad(sample, i, exc)
                continue
            batch.add(value)
            batch.span = end
            i = skip_ws(text, end)

    def duckdb_reader(self, max_object_size: int) -> str:
        return json_objects_reader("unstructured", max_object_size)


def split_concatenated(text: str) -> Iterator[RawRecord]:
    """Documents back to back (`{..}{..}`), whitespace allowed between them.

    After a broken document, reading resumes at the next `{` from which a whole document
    parses and is followed by another document, whitespace or the end.
    """
    pos = skip_ws(text, 0)
    position = 0
    while pos < len(text):
        try:
            value, end = decode_near(text, pos)
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
