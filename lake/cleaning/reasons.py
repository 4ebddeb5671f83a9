"""Quarantine reasons: the stable code of each reason text (docs/cleaning.md, "Quarantine").

A reason is free text written where the problem is found (the typing query, staging, the
splitter in lake.framings, lake.object_fetch) and often names an offset, a column or a
value, so two records rarely share one. Its code is derived here, once, from how the text
starts: a small fixed set to count and filter by. The detail is what the text says beyond
its code (the text after `<prefix>: `, else the whole text).
"""

from __future__ import annotations

from lake.record_limits import KEY_TOO_LONG, TOO_DEEP, TOO_MANY_COLUMNS
from lake.sql_text import sql_string

OUT_OF_RANGE = "event time out of range"
OTHER = "other"  # a reason no prefix below matches

# reason text prefix -> code; the first match wins, so a longer prefix comes before the
# shorter one it begins with
REASON_CODES = (
    ("invalid JSON", "invalid_json"),
    ("record is a JSON", "not_an_object"),
    ("duplicate key in record", "duplicate_key"),
    (TOO_MANY_COLUMNS, "too_many_columns"),
    (TOO_DEEP, "too_deep"),
    (KEY_TOO_LONG, "key_too_long"),
    ("missing event time field", "missing_event_time"),
    (OUT_OF_RANGE, "event_time_out_of_range"),
    ("event time ", "invalid_event_time"),
    ("missing or non-scalar dedup key", "missing_dedup_key"),
    ("column ", "cannot_cast"),
    ("unreadable object", "unreadable_object"),
    # object- and size-level reasons (lake.object_fetch, lake.framings) start with their code
    ("unreadable_object", "unreadable_object"),
    ("unsafe_key", "unsafe_key"),
    ("record_too_large", "record_too_large"),
    ("object_too_large_expanded", "object_too_large_expanded"),
)
CODES = frozenset(code for _, code in REASON_CODES) | {OTHER}


def reason_code_sql(reason: str) -> str:
    """SQL giving the code of the VARCHAR expression `reason`."""
    cases = " ".join(
        f"WHEN starts_with({reason}, {sql_string(prefix)}) THEN {sql_string(code)}"
        for prefix, code in REASON_CODES
    )
    return f"CASE {cases} ELSE {sql_string(OTHER)} END"


def reason_detail_sql(reason: str) -> str:
    """SQL giving what `reason` says beyond its code: the text after `<prefix>: `, or the
    whole text when it does not start so."""
    cases = " ".join(
        f"WHEN starts_with({reason}, {sql_string(prefix + ': ')}) "
        f"THEN substr({reason}, {len(prefix) + 3})"
        for prefix, _ in REASON_CODES
    )
    return f"CASE {cases} ELSE {reason} END"
