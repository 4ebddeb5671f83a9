"""How records become object bytes: serialization, the three framings, gzip, broken records."""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Sequence
from typing import Any

CONCATENATED_JSON = "concatenated_json"  # {...}{...}  Firehose's default, no delimiter
NDJSON = "ndjson"  # one document per line
JSON_RECORDS = "json_records"  # {"Records": [...]}  CloudTrail
FRAMINGS = (CONCATENATED_JSON, NDJSON, JSON_RECORDS)
RECORDS_KEY = "Records"


def dumps(record: Any) -> str:
    """Compact JSON; keys stay in insertion order, which the generators keep fixed."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def frame(framing: str, texts: Sequence[str]) -> bytes:
    """Join serialized records (good or broken) the way `framing` lays them out."""
    if framing == CONCATENATED_JSON:
        body = "".join(texts)
    elif framing == NDJSON:
        body = "".join(t + "\n" for t in texts)
    elif framing == JSON_RECORDS:
        body = '{"' + RECORDS_KEY + '":[' + ",".join(texts) + "]}"
    else:
        raise ValueError(f"unknown framing {framing!r}; expected one of {FRAMINGS}")
    return body.encode("utf-8")


def compress(data: bytes) -> bytes:
    # mtime=0 and no file name keep the bytes a pure function of the data.
    return gzip.compress(data, compresslevel=6, mtime=0)


def encode_object(framing: str, texts: Sequence[str]) -> bytes:
    return compress(frame(framing, texts))


def truncated(text: str, rng: random.Random) -> str:
    """A prefix of a serialized record, at most its first half, that is not valid JSON.

    The cut stays before the record's second `{`, so a reader that resynchronises on the
    next `{` after a parse error lands on the next record, not inside this one.
    """
    limit = text.find("{", 1)
    if limit == -1:
        limit = len(text)
    hi = max(2, min(limit, len(text) // 2))
    return text[: rng.randint(max(2, hi // 2), hi)]


def malformed(framing: str, record: dict[str, Any], time_field: str, rng: random.Random) -> str:
    """The raw text of a broken record that takes `record`'s place in the object.

    Concatenated JSON and NDJSON get a truncated document. A CloudTrail file is a single
    JSON document that must stay valid, so its broken record is either a JSON string where
    an object belongs or an object without its event time.
    """
    text = dumps(record)
    if framing in (CONCATENATED_JSON, NDJSON):
        return truncated(text, rng)
    if rng.random() < 0.5:
        return dumps(truncated(text, rng))
    return dumps({k: v for k, v in record.items() if k != time_field})
