"""Telling the framing of JSON text from a sample of it (the crawler's classifier)."""

from __future__ import annotations

import json

from lake.framings.base import Framing
from lake.framings.concatenated_json import ConcatenatedJson
from lake.framings.json_array import JsonArray
from lake.framings.ndjson import NdJson
from lake.framings.records_wrapped import RecordsWrapped, open_wrapper, wrapper_key
from lake.framings.sampling import Cut, NeedMore, SampleText, after_bad, decode
from lake.json_text import skip_ws


def detect_json(sample: SampleText, start: int, hint: str | None) -> tuple[str, Framing]:
    """(label, framing) of JSON text starting at `start`: label is "array", "wrapper",
    "ndjson", "concatenated" or "single" (one object); `hint` is the stream's records_key.
    A text of objects is judged by the first one that parses."""
    if sample.text[start] == "[":
        return "array", JsonArray()
    pos = start
    while pos < len(sample.text):
        try:
            doc, end = decode(sample, pos)
        except Cut:
            opened = open_wrapper(sample, pos, hint)
            if opened is None:
                raise NeedMore from None
            return "wrapper", RecordsWrapped(opened[0])
        except json.JSONDecodeError as exc:
            pos = after_bad(sample, pos, exc)
            continue
        records_key = wrapper_key(doc, hint)
        if records_key is not None:
            return "wrapper", RecordsWrapped(records_key)
        label = _label_after(sample, pos, end)
        return label, NdJson() if label == "ndjson" else ConcatenatedJson()
    return "concatenated", ConcatenatedJson()  # nothing parses: the sampler counts the bad records


def _label_after(sample: SampleText, start: int, end: int) -> str:
    """What follows the first record decides: a newline and `{` for ndjson, `{` on the same
    line for concatenated, nothing for a single object."""
    text = sample.text
    after = skip_ws(text, end)
    if after == len(text):
        if sample.more:
            raise NeedMore
        return "single"
    one_line = text.find("\n", start, end) == -1
    if text[after] == "{" and one_line and text.find("\n", end, after) != -1:
        return "ndjson"
    return "concatenated"
