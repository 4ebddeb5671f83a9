"""One top-level JSON array of records (`[{..}, {..}]`): detected, not declarable yet."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from lake.framings.base import Framing, RawRecord, UnreadableObject, json_objects_reader
from lake.framings.sampling import Batch, SampleText, collect_elements
from lake.json_text import NotText, decode_near, skip_ws, strict_utf8


@dataclass(frozen=True)
class JsonArray(Framing):
    name = "array"

    def split(self, text: str) -> Iterator[RawRecord]:
        start = skip_ws(text, 0)
        try:
            values, end = decode_near(text, start)
        except json.JSONDecodeError as exc:
            raise UnreadableObject(f"the top-level array is not valid JSON ({exc.msg})") from None
        if not isinstance(values, list) or skip_ws(text, end) < len(text):
            raise UnreadableObject("not one top-level JSON array: not this framing")
        for position, value in enumerate(values):
            yield RawRecord(position, json.dumps(value, separators=(",", ":")), value)

    def split_file(self, fh: BinaryIO, max_record_bytes: int) -> Iterator[RawRecord]:
        """The array is parsed whole: the limit is the whole object's."""
        try:
            text = strict_utf8(fh.read())
        except NotText as exc:
            raise UnreadableObject(str(exc)) from None
        yield from self.split(text)

    def sample(self, sample: SampleText, start: int, batch: Batch) -> None:
        end = collect_elements(sample, start, batch, "top-level array")
        if end is not None and skip_ws(sample.text, end) < len(sample.text):
            batch.stop = "error"  # only one top-level array is read: say so
            batch.notes.append(
                f"the text after the top-level array (from character {end}) was not read"
            )

    def duckdb_reader(self, max_object_size: int) -> str:
        return json_objects_reader("array", max_object_size)
