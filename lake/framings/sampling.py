"""Reading records from a sample of an object's text, whose end may cut a record.

The framings' samplers and the framing detection share these: the sample, the batch of
records gathered from it, and decoding that tells a value cut by the sample's end (Cut)
from a malformed one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from lake.json_text import NestedTooDeep, decode_near, resync, skip_ws


class Unknown(Exception):
    """Content no classifier accepts; the message is the reason."""


class NeedMore(Exception):
    """The sample ends before its first record does."""


class Cut(Exception):
    """The sample ends inside the value being decoded."""


@dataclass(frozen=True)
class SampleText:
    text: str
    whole: bool  # the entire object, so a record cut by its end is malformed
    more: bool  # the object goes on past this sample


@dataclass
class Batch:
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


def collect_elements(sample: SampleText, start: int, batch: Batch, what: str) -> int | None:
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


def _collect_list(sample: SampleText, start: int, batch: Batch) -> int | None:
    text = sample.text
    i = skip_ws(text, start + 1)
    if text.startswith("]", i):
        return i + 1
    while not batch.full():
        try:
            value, i = decode(sample, i)
        except Cut:
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


def after_bad(sample: SampleText, pos: int, exc: json.JSONDecodeError) -> int:
    """Where reading goes on after the malformed document at pos: past its end when it is
    only too deep (well formed), else at the next document (see resync)."""
    if isinstance(exc, NestedTooDeep) and exc.end is not None:
        return skip_ws(sample.text, exc.end)
    return _resync(sample, pos + 1)


def _resync(sample: SampleText, start: int) -> int:
    """The next `{` from which a document decodes (or is cut by the sample's end)."""
    return resync(sample.text, start, lambda _text, pos: decode(sample, pos), (Cut,))


def decode(sample: SampleText, pos: int) -> tuple[Any, int]:
    """The JSON value at pos and where it ends; Cut when the sample's end cuts it."""
    try:
        return decode_near(sample.text, pos)
    except NestedTooDeep as exc:
        if exc.end is None and not sample.whole:
            raise Cut from None
        raise
    except json.JSONDecodeError as exc:
        if not sample.whole and _ends_inside(sample.text, exc):
            raise Cut from None
        raise


_JSON_LITERALS = ("true", "false", "null", "NaN", "Infinity", "-Infinity")
_NUMBER_TAIL = re.compile(r"[0-9+\-.eE]+")
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
