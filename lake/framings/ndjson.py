"""Newline-delimited JSON: one document a line (clickstreams)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from lake.framings import base  # BLOCK_BYTES and PREFIX_CHARS read at call time (tests tune them)
from lake.framings.base import (
    TOO_DEEP_TO_PARSE,
    Framing,
    RawRecord,
    UnreadableObject,
    json_objects_reader,
)
from lake.framings.json_window import too_large
from lake.framings.sampling import Batch, SampleText
from lake.json_text import NotText, skip_ws, strict_utf8


@dataclass(frozen=True)
class NdJson(Framing):
    name = "ndjson"

    def split(self, text: str) -> Iterator[RawRecord]:
        position = 0
        for line in text.splitlines():
            if not line.strip():
                continue
            yield _parsed(position, line)
            position += 1

    def split_file(self, fh: BinaryIO, max_record_bytes: int) -> Iterator[RawRecord]:
        """Lines end at \\n (\\r\\n too); a line longer than the limit is skipped in blocks,
        keeping its first PREFIX_CHARS characters."""
        return _stream_lines(fh, max_record_bytes)

    def sample(self, sample: SampleText, start: int, batch: Batch) -> None:
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

    def duckdb_reader(self, max_object_size: int) -> str:
        return json_objects_reader("newline_delimited", max_object_size)


def _parsed(position: int, text: str) -> RawRecord:
    try:
        return RawRecord(position, text, json.loads(text))
    except json.JSONDecodeError as exc:
        return RawRecord(position, text, error=f"invalid JSON: {exc.msg} (column {exc.colno})")
    except RecursionError:
        return RawRecord(position, text, error=TOO_DEEP_TO_PARSE)


def _stream_lines(fh: BinaryIO, limit: int) -> Iterator[RawRecord]:
    position = 0
    offset = 0
    while line := fh.readline(limit + 2):
        start, length = offset, len(line)
        offset += len(line)
        if not line.endswith(b"\n") and length > limit:
            prefix = line[: base.PREFIX_CHARS].decode("utf-8", "replace")
            while not line.endswith(b"\n") and (line := fh.readline(base.BLOCK_BYTES)):
                length += len(line)
                offset += len(line)
            body = length - (2 if line.endswith(b"\r\n") else 1 if line.endswith(b"\n") else 0)
            yield too_large(position, prefix, body, limit)
            position += 1
            continue
        line = line.removesuffix(b"\n").removesuffix(b"\r")
        try:
            text = strict_utf8(line)
        except NotText as exc:
            raise UnreadableObject(f"{exc} (in the line at byte {start})") from None
        if not text.strip():
            continue
        if len(line) > limit:
            yield too_large(position, text[: base.PREFIX_CHARS], len(line), limit)
        else:
            yield _parsed(position, text)
        position += 1
