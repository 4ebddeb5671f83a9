"""Turning a landed object's bytes into raw records, keeping each record's own text.

Firehose concatenates JSON documents with no delimiter; clickstreams are one document a
line; CloudTrail wraps records in {"Records": [...]}. Every record comes back with its
position and raw text so a bad one can be quarantined while the rest of the object is
processed.
"""

from __future__ import annotations

import codecs
import gzip
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from lake.json_text import (
    NestedTooDeep,
    NotText,
    decode_near,
    resync,
    skip_ws,
    strict_utf8,
)
from lake.record_limits import TOO_DEEP
from lake.streams import StreamSpec

TOO_DEEP_TO_PARSE = f"{TOO_DEEP}: deeper than the JSON parser's recursion allows"

GZIP_MAGIC = b"\x1f\x8b"
TOO_LARGE = "record_too_large"  # reason code of a record over the stream's max_record_bytes
BLOCK_BYTES = 4 << 20  # bytes read at a time by the streaming splitters
PREFIX_CHARS = 64 << 10  # what the quarantine keeps of a record over the limit


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


def _wrapped(text: str, records_key: str) -> Iterator[RawRecord]:
    return _unwrap(_concatenated(text), records_key)


def _unwrap(docs: Iterator[RawRecord], records_key: str) -> Iterator[RawRecord]:
    position = 0
    for doc in docs:
        if doc.error is not None and doc.error.startswith(TOO_LARGE):
            # a wrapper over the limit is set aside whole: its records cannot be reached
            yield RawRecord(position, doc.text, error=doc.error)
            position += 1
            continue
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


# --- Streaming: a file of any size, in memory bounded by the record limit -------------


def iter_file_records(fh: BinaryIO, spec: StreamSpec, max_record_bytes: int) -> Iterator[RawRecord]:
    """iter_records over a file of plain (decompressed) bytes, reading it a block at a
    time: memory stays a few times max_record_bytes whatever the file's size. A record
    longer than max_record_bytes comes back with an error starting `record_too_large`,
    its first PREFIX_CHARS characters as text and its length in the error; it is never
    held whole. Raises UnreadableObject when the bytes are not UTF-8 text (the caller
    then drops what it had from the file). For json_records the limit is the wrapping
    document's: it is parsed whole."""
    if spec.format == "ndjson":
        yield from _ndjson_stream(fh, max_record_bytes)
        return
    docs = _concatenated_stream(_TextWindow(fh), max_record_bytes)
    if spec.format == "json_records":
        yield from _unwrap(docs, spec.records_key or "Records")
    else:
        yield from docs


def _too_large(position: int, prefix: str, length: int, limit: int) -> RawRecord:
    return RawRecord(
        position,
        prefix,
        error=f"{TOO_LARGE}: record of {length} bytes exceeds max_record_bytes={limit}",
    )


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


class _TextWindow:
    """Strict UTF-8 text of a binary stream, a window of it at a time (`text`)."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self.text = ""
        self.eof = False
        self.offset = 0  # bytes read so far
        self.more(0)

    def more(self, drop: int, at_least: int = 0) -> None:
        """Forget text[:drop] and read at least `at_least` more bytes (a block at least)."""
        data = self.fh.read(max(BLOCK_BYTES, at_least))
        nul = data.find(b"\x00")
        if nul != -1:
            raise UnreadableObject(f"binary content: NUL byte at byte {self.offset + nul}")
        pending = self.decoder.getstate()[0]
        try:
            text = self.decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            at = self.offset - len(pending) + exc.start
            bad = (pending + data)[exc.start : exc.start + 8]
            raise UnreadableObject(f"not valid UTF-8 at byte {at}: {bad!r}") from None
        if self.offset == 0:
            text = text.removeprefix("\ufeff")
        self.offset += len(data)
        self.eof = not data
        self.text = self.text[drop:] + text


def _maybe_cut(exc: json.JSONDecodeError | None, window: _TextWindow) -> bool:
    """Whether a failed parse may only lack the text after the window's end."""
    if window.eof:
        return False
    if exc is None:  # parsed, but a number at the window's end may go on
        return True
    return exc.pos >= len(window.text) - 16 or exc.msg.startswith("Unterminated string")


def _next_document(text: str, start: int) -> int | None:
    """Like lake.json_text.resync inside a window: the next `{` from which a document
    parses and is followed by another `{` in the window; None when the window does not
    show one yet."""
    candidate = text.find("{", start)
    while candidate != -1:
        try:
            _, end = decode_near(text, candidate)
        except json.JSONDecodeError:
            pass
        else:
            after = skip_ws(text, end)
            if after < len(text) and text[after] == "{":
                return candidate
        candidate = text.find("{", candidate + 1)
    return None


def _concatenated_stream(window: _TextWindow, limit: int) -> Iterator[RawRecord]:
    """_concatenated over a window that slides along the file. The window grows (doubling)
    while a document may be cut by its end, up to `limit` characters past the document's
    start; past that the document is too large and is skipped, streaming, up to where
    reading resumes (the same rule as after a malformed document)."""
    pos = 0
    position = 0
    while True:
        pos = skip_ws(window.text, pos)
        if pos == len(window.text):
            if window.eof:
                return
            window.more(pos)
            pos = 0
            continue
        text = window.text
        exc: json.JSONDecodeError | None = None
        try:
            value, end = decode_near(text, pos)
        except NestedTooDeep as deep:
            if deep.end is None and not window.eof and len(text) - pos <= limit:
                window.more(pos, at_least=len(text) - pos)  # its end may be past the window
                pos = 0
                continue
            if deep.end is None:  # open past the limit or to the end of the file
                prefix = text[pos : pos + PREFIX_CHARS]
                pos, length = _skip_structure(window, pos)
                yield _too_large(position, prefix, length, limit)
            else:
                yield RawRecord(position, text[pos : deep.end], error=TOO_DEEP_TO_PARSE)
                pos = deep.end
            position += 1
            continue
        except json.JSONDecodeError as error:
            exc = error
        else:
            if end < len(text) or window.eof:
                if end - pos > limit // 4 and _utf8_len(text[pos:end]) > limit:
                    length = _utf8_len(text[pos:end])
                    yield _too_large(position, text[pos : pos + PREFIX_CHARS], length, limit)
                else:
                    yield RawRecord(position, text[pos:end], value)
                pos = end
                position += 1
                continue
        cut = _maybe_cut(exc, window)
        if cut and len(text) - pos <= limit:
            window.more(pos, at_least=len(text) - pos)
            pos = 0
            continue
        prefix = text[pos : pos + PREFIX_CHARS]
        if cut and text[pos] in "{[":  # a document still open after `limit`: find its end
            pos, length = _skip_structure(window, pos)
            yield _too_large(position, prefix, length, limit)
            position += 1
            continue
        resume = resync(text, pos + 1, decode_near) if window.eof else _next_document(text, pos + 1)
        if resume is None and len(text) - pos <= limit:
            window.more(pos, at_least=len(text) - pos)
            pos = 0
            continue
        if exc is not None and resume is not None and _utf8_len(text[pos:resume]) <= limit:
            yield RawRecord(
                position,
                text[pos:resume],
                error=f"invalid JSON: {exc.msg} (offset {exc.pos - pos})",
            )
        else:
            resume, length = _skip_large(window, pos, resume, limit)
            yield _too_large(position, prefix, length, limit)
        pos = resume
        position += 1


_OUTSIDE_STRING = re.compile(r'["{}\[\]]')
_INSIDE_STRING = re.compile(r'["\\]')


def _skip_structure(window: _TextWindow, pos: int) -> tuple[int, int]:
    """Slide past the object or array opening at `pos` by following only its strings and
    brackets (so `{}{` inside a string does not end it); return where it ends in the
    window and its length in bytes. Nothing of it is kept. An object never closed runs
    to the end of the file."""
    depth, in_string, escaped = 0, False, False
    length = 0
    i = pos
    while True:
        text = window.text
        while i < len(text):
            if escaped:
                i, escaped = i + 1, False
            elif in_string:
                m = _INSIDE_STRING.search(text, i)
                if m is None:
                    i = len(text)
                elif m.group() == "\\":
                    i, escaped = m.end(), True
                else:
                    i, in_string = m.end(), False
            else:
                m = _OUTSIDE_STRING.search(text, i)
                if m is None:
                    i = len(text)
                    break
                i = m.end()
                if m.group() == '"':
                    in_string = True
                elif m.group() in "{[":
                    depth += 1
                else:
                    depth -= 1
                    if depth <= 0:
                        return i, length + _utf8_len(text[pos:i])
        length += _utf8_len(text[pos:])
        if window.eof:
            return len(text), length
        window.more(len(text))
        pos = i = 0


def _skip_large(window: _TextWindow, pos: int, resume: int | None, limit: int) -> tuple[int, int]:
    """Slide past a document too large to keep, from `pos`; return where reading resumes
    in the window and the document's length in bytes. The last `limit` characters stay in
    the window each time, so the next document can still be found when it starts there."""
    length = 0
    while resume is None:
        keep = max(pos + 1, len(window.text) - limit)
        length += _utf8_len(window.text[pos:keep])
        window.more(keep, at_least=limit)
        pos = 0
        text = window.text
        resume = resync(text, 0, decode_near) if window.eof else _next_document(text, 0)
    return resume, length + _utf8_len(window.text[pos:resume])


def _ndjson_stream(fh: BinaryIO, limit: int) -> Iterator[RawRecord]:
    """_ndjson over a binary stream: lines end at \n (\r\n too); a line longer than
    `limit` is skipped in blocks, keeping its first PREFIX_CHARS characters."""
    position = 0
    offset = 0
    while line := fh.readline(limit + 2):
        start, length = offset, len(line)
        offset += len(line)
        if not line.endswith(b"\n") and length > limit:
            prefix = line[:PREFIX_CHARS].decode("utf-8", "replace")
            while not line.endswith(b"\n") and (line := fh.readline(BLOCK_BYTES)):
                length += len(line)
                offset += len(line)
            body = length - (2 if line.endswith(b"\r\n") else 1 if line.endswith(b"\n") else 0)
            yield _too_large(position, prefix, body, limit)
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
            yield _too_large(position, text[:PREFIX_CHARS], len(line), limit)
        else:
            try:
                yield RawRecord(position, text, json.loads(text))
            except json.JSONDecodeError as exc:
                yield RawRecord(
                    position, text, error=f"invalid JSON: {exc.msg} (column {exc.colno})"
                )
            except RecursionError:
                yield RawRecord(position, text, error=TOO_DEEP_TO_PARSE)
        position += 1
