"""Concatenated JSON (`{..}{..}`) streamed from a file of any size, a window at a time.

Memory stays a few times the record limit: a record longer than it is never held whole
(it comes back as TOO_LARGE with a prefix of its text and its length).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import BinaryIO

from lake.framings import base  # BLOCK_BYTES and PREFIX_CHARS read at call time (tests tune them)
from lake.framings.base import TOO_DEEP_TO_PARSE, TOO_LARGE, RawRecord, UnreadableObject
from lake.json_text import NestedTooDeep, decode_near, resync, skip_ws


def too_large(position: int, prefix: str, length: int, limit: int) -> RawRecord:
    return RawRecord(
        position,
        prefix,
        error=f"{TOO_LARGE}: record of {length} bytes exceeds max_record_bytes={limit}",
    )


def utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


class TextWindow:
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
        data = self.fh.read(max(base.BLOCK_BYTES, at_least))
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


def _maybe_cut(exc: json.JSONDecodeError | None, window: TextWindow) -> bool:
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


def stream_concatenated(fh: BinaryIO, limit: int) -> Iterator[RawRecord]:
    """The concatenated JSON splitter over a window that slides along the file. The window
    grows (doubling) while a document may be cut by its end, up to `limit` characters past
    the document's start; past that the document is too large and is skipped, streaming, up
    to where reading resumes (the same rule as after a malformed document)."""
    window = TextWindow(fh)
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
                prefix = text[pos : pos + base.PREFIX_CHARS]
                pos, length = _skip_structure(window, pos)
                yield too_large(position, prefix, length, limit)
            else:
                yield RawRecord(position, text[pos : deep.end], error=TOO_DEEP_TO_PARSE)
                pos = deep.end
            position += 1
            continue
        except json.JSONDecodeError as error:
            exc = error
        else:
            if end < len(text) or window.eof:
                if end - pos > limit // 4 and utf8_len(text[pos:end]) > limit:
                    length = utf8_len(text[pos:end])
                    yield too_large(position, text[pos : pos + base.PREFIX_CHARS], length, limit)
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
        prefix = text[pos : pos + base.PREFIX_CHARS]
        if cut and text[pos] in "{[":  # a document still open after `limit`: find its end
            pos, length = _skip_structure(window, pos)
            yield too_large(position, prefix, length, limit)
            position += 1
            continue
        resume = resync(text, pos + 1, decode_near) if window.eof else _next_document(text, pos + 1)
        if resume is None and len(text) - pos <= limit:
            window.more(pos, at_least=len(text) - pos)
            pos = 0
            continue
        if exc is not None and resume is not None and utf8_len(text[pos:resume]) <= limit:
            yield RawRecord(
                position,
                text[pos:resume],
                error=f"invalid JSON: {exc.msg} (offset {exc.pos - pos})",
            )
        else:
            resume, length = _skip_large(window, pos, resume, limit)
            yield too_large(position, prefix, length, limit)
        pos = resume
        position += 1


_OUTSIDE_STRING = re.compile(r'["{}\[\]]')
_INSIDE_STRING = re.compile(r'["\\]')


def _skip_structure(window: TextWindow, pos: int) -> tuple[int, int]:
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
                        return i, length + utf8_len(text[pos:i])
        length += utf8_len(text[pos:])
        if window.eof:
            return len(text), length
        window.more(len(text))
        pos = i = 0


def _skip_large(window: TextWindow, pos: int, resume: int | None, limit: int) -> tuple[int, int]:
    """Slide past a document too large to keep, from `pos`; return where reading resumes
    in the window and the document's length in bytes. The last `limit` characters stay in
    the window each time, so the next document can still be found when it starts there."""
    length = 0
    while resume is None:
        keep = max(pos + 1, len(window.text) - limit)
        length += utf8_len(window.text[pos:keep])
        window.more(keep, at_least=limit)
        pos = 0
        text = window.text
        resume = resync(text, 0, decode_near) if window.eof else _next_document(text, 0)
    return resume, length + utf8_len(window.text[pos:resume])
