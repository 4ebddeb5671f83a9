"""What the two readers of landed JSON share: strict UTF-8 text, and finding the next record.

The framings (lake.framings) split whole objects for cleaning and read a sample of an
object for the crawler, whose end may cut a record. Both decode text the same way and,
after a malformed record in concatenated JSON, resume at the same place.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

WS = re.compile(r"[ \t\r\n]*")
DECODER = json.JSONDecoder()
Decode = Callable[[str, int], tuple[Any, int]]


class NestedTooDeep(json.JSONDecodeError):
    """A value nested deeper than Python's decoder recurses; `end` is where it ends (found
    without recursion), None when the text ends first."""

    def __init__(self, text: str, pos: int) -> None:
        super().__init__("nested too deeply", text, pos)
        self.end = value_end(text, pos)


def raw_decode(text: str, pos: int) -> tuple[Any, int]:
    """DECODER.raw_decode, with a value too deep for it as NestedTooDeep."""
    try:
        return DECODER.raw_decode(text, pos)
    except RecursionError:
        raise NestedTooDeep(text, pos) from None


class Malformed(json.JSONDecodeError):
    """A JSONDecodeError without the stdlib's line count (O(position) for each error: for
    a window of many malformed records that is quadratic)."""

    def __init__(self, msg: str, pos: int) -> None:
        ValueError.__init__(self, f"{msg}: char {pos}")
        self.msg, self.pos = msg, pos


def decode_near(text: str, pos: int) -> tuple[Any, int]:
    """raw_decode(text, pos), reading a slice of text that grows only while the
    document may go on past it, so a failure costs the slice, not the window."""
    size = 4096
    while True:
        piece = text[pos : pos + size]
        whole = pos + size >= len(text)
        try:
            value, end = raw_decode(piece, 0)
        except NestedTooDeep:
            raise NestedTooDeep(text, pos) from None  # its end, searched in the whole window
        except json.JSONDecodeError as exc:
            if whole or (exc.pos < len(piece) - 16 and not exc.msg.startswith("Unterminated")):
                raise Malformed(exc.msg, pos + exc.pos) from None
        else:
            if whole or end < len(piece):
                return value, pos + end
        size *= 4


_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def value_end(text: str, pos: int) -> int | None:
    """Where the object or array at `pos` ends, by counting brackets outside strings;
    None when the text ends first."""
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text, pos):
        token = match.group()
        if token in "[{":
            depth += 1
        elif token in "]}":
            depth -= 1
            if depth == 0:
                return match.end()
    return None


class NotText(ValueError):
    """Bytes that are not UTF-8 text (the message says where)."""


def strict_utf8(data: bytes, whole: bool = True) -> str:
    """Strict UTF-8 without a BOM. With `whole` False (a sample), a character cut by the
    end of the bytes is dropped instead of refused. A NUL byte means binary content."""
    nul = data.find(b"\x00")
    if nul != -1:
        raise NotText(f"binary content: NUL byte at byte {nul}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if whole or exc.reason != "unexpected end of data":
            raise NotText(
                f"not valid UTF-8 at byte {exc.start}: {data[exc.start : exc.start + 8]!r}"
            ) from None
        text = data[: exc.start].decode("utf-8")
    return text.removeprefix("\ufeff")


def skip_ws(text: str, pos: int) -> int:
    return WS.match(text, pos).end()  # type: ignore[union-attr]


def resync(
    text: str,
    start: int,
    decode: Decode | None = None,
    cut: tuple[type[Exception], ...] = (),
) -> int:
    """Where reading resumes after a malformed document in concatenated JSON: the next `{`
    from which a document decodes and is followed by another `{` or the end (or, for a
    sample, one `decode` reports as cut by the sample's end: an exception in `cut`);
    the text's end when there is none."""
    decode = decode or decode_near
    candidate = text.find("{", start)
    while candidate != -1:
        try:
            _, end = decode(text, candidate)
        except cut:
            return candidate
        except NestedTooDeep as exc:  # a document of its own (too deep), or never closed
            if exc.end is None:
                return len(text)
            after = skip_ws(text, exc.end)
            if after == len(text) or text[after] == "{":
                return candidate
        except json.JSONDecodeError:
            pass
        else:
            after = skip_ws(text, end)
            if after == len(text) or text[after] == "{":
                return candidate
        candidate = text.find("{", candidate + 1)
    return len(text)
