"""Records -> typed, flat, masked rows, or a quarantine reason; as one DuckDB query.

Each record is parsed once into the list of its leaves as VARCHAR (DuckDB's
`json_extract_string` with one JSON pointer per column: pointers match keys exactly, so
keys that differ only by case, or the empty key, are distinct leaves, where a struct
type would refuse them), then every leaf is masked (lake.cleaning.masking) or cast to its
column type (lake.cleaning.columns); a value that is present but does not cast gives the
record a reason, and a record with a reason is quarantined with its raw text instead of
being half-loaded. Event time becomes a UTC timestamp.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from lake.cleaning.columns import TEXT_TYPES, Column, json_pointer
from lake.cleaning.masking import (
    json_text,
    masked_value,
    masking_steps,
    text_rules,
)
from lake.cleaning.reasons import OUT_OF_RANGE
from lake.pii_rules import text_rule_hints
from lake.sql_text import quote_identifier, sql_string
from lake.streams import StreamSpec

Hours = datetime | Sequence[datetime] | None  # one arrival hour, or each object's
# whether a record's raw text holds a backslash or a hint of a set of masked columns whose
# hints are raw_safe (no column name has a colon, so none can be named so)
HINTED = "q:hinted"
# what json_extract_string writes into a leaf's text that the raw text may not hold: JSON
# punctuation (objects and arrays are written again without spaces), numbers written
# again (1e5 -> 100000.0, NaN, Infinity), escapes decoded
_REWRITTEN = frozenset('{}[],:" \t\n\r\\0123456789.eE+-') | frozenset("nNaAiIfFtTyY")


def typing_sql(
    source: str,
    columns: list[Column],
    spec: StreamSpec,
    hour: Hours = None,
) -> str:
    """SELECT over `source` (columns _object, _position, raw) giving every typed column
    (the raw text stays in `source`: only quarantined records need it),
    `_reason` (NULL when the record is clean), `_key_hi` and `_key_lo` (the dedup key's
    MD5 in two UBIGINT halves), `_dt` (the event date, last) and `_shape`
    (a hash of the record's top-level key list: records share a few shapes, so repeated
    keys and fields the catalog lacks are looked for once per shape, see lake.cleaning.new_fields).
    Event times outside the stream's accepted range around the arrival `hour` count as
    missing a value (typed column NULL) and give the record its reason; `hour` may be a
    list giving each object's (`_object` indexes it), for passes over several hours.
    The masked columns (masked_by_value) come out as their text, masked afterwards once
    per distinct text (masking_sql, lake.cleaning.typed.mask_by_text, which drops the
    query's HINTED: the records whose cells it must test for a hint)."""
    # a leaf's text is `v:<name>` and its masked text `m:<name>`: no column name has a
    # colon (lake.hive_types), so no column's own name can stand for another's text
    plain = [c for c in columns if not c.json]
    texts = [c for c in columns if c.json]
    leaves = [f"_l[{i}] AS {quote_identifier('v:' + c.name)}" for i, c in enumerate(plain, 1)]
    # a JSON field's value as JSON text (a string stays quoted); JSON null is no value
    leaves += [
        f"CASE WHEN _j[{i}] <> 'null' THEN _j[{i}] END AS {quote_identifier('v:' + c.name)}"
        for i, c in enumerate(texts, 1)
    ]
    bounds = _bounds(spec, hour)
    later = [c for c in columns if masked_by_value(c, spec)]
    typed = [
        f"{quote_identifier('v:' + c.name) if c in later else _typed(c, spec, bounds)} "
        f"AS {quote_identifier(c.name)}"
        for c in columns
    ]
    reasons = _reasons(columns, spec, bounds)
    extract = f"json_extract_string(raw, {_pointers(plain)})" if plain else "NULL"
    extract_json = f"json_extract(raw, {_pointers(texts)})::VARCHAR[]" if texts else "NULL"
    hinted = quote_identifier(HINTED)
    return f"""
WITH parsed AS (
    SELECT _object, _position, raw, _jt,
           {extract} AS _l, {extract_json} AS _j,
           CASE WHEN _jt = 'object' THEN hash(json_keys(raw)) END AS _shape,
           {_raw_guard(columns, spec)} AS {hinted}
    FROM (SELECT *, {_JSON_KIND} AS _jt FROM {source})
), leaves AS (
    SELECT _object, _position, _jt, _shape, {hinted}, {", ".join(leaves) or "NULL AS _none"}
    FROM parsed
),
timed AS (
    SELECT *, {_event_any(columns, spec)} AS _event_any FROM leaves
), typed AS (
    SELECT *, {", ".join(typed) or "NULL AS _none2"},
           md5_number({_dedup_value(columns, spec)}) AS _key_hash
    FROM timed
)
SELECT _object, _position, _shape,
       (_key_hash >> 64)::UBIGINT AS _key_hi, (_key_hash & {(1 << 64) - 1})::UBIGINT AS _key_lo,
       {reasons} AS _reason, {hinted},
       {", ".join(quote_identifier(c.name) for c in columns)},
       {_event_date(columns, spec, hour)} AS _dt
FROM typed
"""


def _event_date(columns: list[Column], spec: StreamSpec, hour: Hours) -> str:
    """SQL for a record's event date (the arrival date if the catalog has no event time;
    NULL with no arrival hour either)."""
    for c in columns:
        if c.path == (spec.event_time_field,):
            return f"CAST({quote_identifier(c.name)} AS DATE)"
    if hour is None:
        return "NULL::DATE"
    return per_object_sql(hour, lambda h: f"DATE '{h:%Y-%m-%d}'")


def masking_sets(columns: list[Column], spec: StreamSpec) -> list[list[Column]]:
    """The masked_by_value columns, in sets of one masking_key (masked alike)."""
    sets: dict[tuple | None, list[Column]] = {}
    for c in columns:
        if masked_by_value(c, spec):
            sets.setdefault(masking_key(c, spec), []).append(c)
    return list(sets.values())


def cell_hints(members: list[Column], spec: StreamSpec) -> list[str] | None:
    """A set's text rule hints (lake.pii_rules.text_rule_hints) when its columns are
    plain text masked by the text rules alone: a cell holding none of them is unchanged
    by the masking; else None (every cell is masked)."""
    rules = text_rules(members[0], spec)
    if rules is None or any(c.json or c.mask or c.duck_type != "VARCHAR" for c in members):
        return None
    return text_rule_hints(rules)


def raw_safe(hints: list[str]) -> bool:
    """Whether a leaf's text (json_extract_string) can hold one of `hints` only where
    the record's raw text holds it or a backslash: a string's text is its raw text when
    it has no escape, and no hint has a character that writing a number, an object or an
    array again could bring in (_REWRITTEN)."""
    return all(h and not (_REWRITTEN & set(h)) for h in hints)


def _raw_guard(columns: list[Column], spec: StreamSpec) -> str:
    """SQL for HINTED: the raw text holds a backslash or a hint of a raw_safe set (a
    record without one has no cell of those sets that any of their rules changes)."""
    hints = set()
    for members in masking_sets(columns, spec):
        found = cell_hints(members, spec)
        if found is not None and raw_safe(found):
            hints.update(found)
    if not hints:
        return "true"
    return " OR ".join(f"contains(raw, {sql_string(h)})" for h in ["\\", *sorted(hints)])


def masked_by_value(c: Column, spec: StreamSpec) -> bool:
    """Whether the column's typed value is a mask of its text alone (hash, redact, the
    stream's text rules): the same text always gives the same value."""
    return c.path != (spec.event_time_field,) and (
        c.mask is not None or text_rules(c, spec) is not None
    )


def masking_key(c: Column, spec: StreamSpec) -> tuple | None:
    """Columns with the same key mask a text alike (the text rules they apply)."""
    rules = text_rules(c, spec)
    return None if rules is None else (rules.text_rules, rules.non_string_key_value)


def masking_sql(source: str, columns: list[Column], spec: StreamSpec) -> str:
    """SELECT over `source` (one VARCHAR column `v`, each text once) giving the text, then
    each of `columns` (masked_by_value, one masking_key) typed from it as typing_sql
    would: the text rules run once per text for all of them (the first column's steps,
    its `v:` and `m:` named after each other column too)."""
    first = columns[0]
    v0, m0 = (quote_identifier(f"{p}:{first.name}") for p in ("v", "m"))
    masked, relation = masking_steps(first, spec, "leaves")
    with_m = text_rules(first, spec) is not None
    aliases = "".join(
        f", {v0} AS {quote_identifier('v:' + c.name)}"
        + (f", {m0} AS {quote_identifier('m:' + c.name)}" if with_m else "")
        for c in columns[1:]
    )
    bounds = _bounds(spec, None)  # unused: no event time among the columns
    typed = ", ".join(f"{_typed(c, spec, bounds)} AS {quote_identifier(c.name)}" for c in columns)
    return f"""
WITH leaves AS (SELECT v AS {v0} FROM {source}),
{masked}aliased AS (SELECT *{aliases} FROM {relation})
SELECT {v0}, {typed} FROM aliased
"""


@dataclass(frozen=True)
class _Bounds:
    """The accepted event times (event_time_bounds): from `lo` to `upper`, one for every
    record or each object's."""

    lo: datetime
    upper: datetime | list[datetime]

    def hi(self, render: Callable[[datetime], str]) -> str:
        return per_object_sql(self.upper, render)


def _bounds(spec: StreamSpec, hour: Hours) -> _Bounds:
    if hour is None or isinstance(hour, datetime):
        return _Bounds(*event_time_bounds(spec, hour))
    return _Bounds(spec.limits.earliest_event_time, [event_time_bounds(spec, h)[1] for h in hour])


def per_object_sql(hour: datetime | Sequence[datetime], render: Callable[[datetime], str]) -> str:
    """SQL for a value of each record's arrival hour (`render` of the hour): a literal
    for one hour, a CASE over runs of `_object` for a list of each object's hours."""
    if isinstance(hour, datetime):
        return render(hour)
    runs: list[tuple[int, datetime]] = []
    for index, h in enumerate(hour):
        if runs and runs[-1][1] == h:
            runs[-1] = (index + 1, h)
        else:
            runs.append((index + 1, h))
    if len(runs) == 1:
        return render(runs[0][1])
    cases = " ".join(f"WHEN _object < {end} THEN {render(h)}" for end, h in runs[:-1])
    return f"CASE {cases} ELSE {render(runs[-1][1])} END"


def _pointers(columns: list[Column]) -> str:
    return "[" + ", ".join(sql_string(json_pointer(c.path)) for c in columns) + "]::VARCHAR[]"


def event_time_bounds(spec: StreamSpec, hour: datetime | None) -> tuple[datetime, datetime]:
    """The event times a record of the arrival `hour` may carry (both ends included):
    from the stream's earliest_event_time to the end of the hour plus
    max_event_time_ahead_hours. Outside it a date cannot be partitioned or is junk."""
    hour = hour or datetime.now(spec.limits.earliest_event_time.tzinfo)
    ahead = timedelta(hours=1 + spec.limits.max_event_time_ahead_hours)
    return spec.limits.earliest_event_time, hour + ahead


# A record's JSON kind from its first character past JSON's whitespace (DuckDB's reader
# hands over valid JSON, and json_type would parse every record once more; the Python
# splitter keeps an NDJSON line's leading tab). ltrim copies the whole text: a record
# starting with `{` or `[` is known without it.
_JSON_KIND = """CASE left(raw, 1) WHEN '{' THEN 'object' WHEN '[' THEN 'array' ELSE
    CASE left(ltrim(raw, ' ' || chr(9) || chr(10) || chr(13)), 1)
    WHEN '{' THEN 'object' WHEN '[' THEN 'array'
    WHEN '"' THEN 'string' WHEN 't' THEN 'boolean' WHEN 'f' THEN 'boolean'
    WHEN 'n' THEN 'null' ELSE 'number' END END"""


def _typed(c: Column, spec: StreamSpec, bounds: _Bounds) -> str:
    v = quote_identifier("v:" + c.name)
    if c.path == (spec.event_time_field,):
        return _event_time(spec.event_time_format, bounds)
    if c.json:
        return json_text(c, spec)
    if (masked := masked_value(c, spec)) is not None:
        return masked
    return _cast(v, c)


def _cast(v: str, c: Column) -> str:
    if c.type in ("int", "bigint"):
        return (
            f"CASE WHEN regexp_full_match({v}, '-?[0-9]+') THEN TRY_CAST({v} AS {c.duck_type}) END"
        )
    if c.type == "double":
        return f"CASE WHEN {v} NOT IN ('NaN', 'Infinity', '-Infinity') THEN TRY_CAST({v} AS DOUBLE) END"
    if c.type == "boolean":
        return f"CASE {v} WHEN 'true' THEN true WHEN 'false' THEN false END"
    if c.duck_type == "VARCHAR":
        return v
    if c.type in _DATE_RANGES:  # infinities and year 10000 parse, but no reader takes them
        lo, hi = _DATE_RANGES[c.type]
        t = f"TRY_CAST({v} AS {c.duck_type})"
        return f"CASE WHEN {t} BETWEEN {lo} AND {hi} THEN {t} END"
    return f"TRY_CAST({v} AS {c.duck_type})"


_DATE_RANGES = {  # what Python, Parquet readers and Redshift all hold: years 1..9999
    "date": ("DATE '0001-01-01'", "DATE '9999-12-31'"),
    "timestamp": (
        "TIMESTAMPTZ '0001-01-01 00:00:00+00'",
        "TIMESTAMPTZ '9999-12-31 23:59:59.999999+00'",
    ),
}


def _event_any(columns: list[Column], spec: StreamSpec) -> str:
    """The event time parsed with no bound: a TIMESTAMPTZ (iso8601, infinities included)
    or a DOUBLE of epoch seconds (kept numeric: to_timestamp raises out of its range)."""
    time_col = next((c for c in columns if c.path == (spec.event_time_field,)), None)
    if time_col is None:
        return "NULL"
    v = quote_identifier("v:" + time_col.name)
    if spec.event_time_format == "epoch_seconds":
        return f"TRY_CAST({v} AS DOUBLE)"
    if spec.event_time_format == "epoch_millis":
        return f"TRY_CAST({v} AS DOUBLE) / 1000"
    return f"TRY_CAST({v} AS TIMESTAMPTZ)"


def _event_time(time_format: str, bounds: _Bounds) -> str:
    """The event time when it is inside `bounds`, else NULL (never an error)."""
    if time_format in ("epoch_seconds", "epoch_millis"):
        lo, hi = repr(bounds.lo.timestamp()), bounds.hi(_epoch)
        return f"to_timestamp(CASE WHEN _event_any BETWEEN {lo} AND {hi} THEN _event_any END)"
    lo, hi = _timestamp(bounds.lo), bounds.hi(_timestamp)
    return f"CASE WHEN _event_any BETWEEN {lo} AND {hi} THEN _event_any END"


def _epoch(t: datetime) -> str:
    return repr(t.timestamp())


def _timestamp(t: datetime) -> str:
    return f"{sql_string(t.isoformat())}::TIMESTAMPTZ"


def _utc_text(t: datetime) -> str:
    return sql_string(f"{t:%Y-%m-%dT%H:%M:%SZ}")


def _dedup_value(columns: list[Column], spec: StreamSpec) -> str:
    """SQL for a record's dedup key as text; NULL when no record has carried the key yet
    (every record then has no key, and is quarantined for it)."""
    for c in columns:
        if c.path == (spec.dedup_key,):
            return quote_identifier("v:" + c.name)
    return "NULL::VARCHAR"


def _reasons(columns: list[Column], spec: StreamSpec, bounds: _Bounds) -> str:
    """The first problem of a record, in a fixed order, or NULL."""
    time_col = next((c for c in columns if c.path == (spec.event_time_field,)), None)
    dedup = _dedup_value(columns, spec)
    cases = [
        "WHEN _jt <> 'object' THEN 'record is a JSON ' || _jt || ', not an object'",
    ]
    if time_col is None:
        cases.append(
            f"WHEN true THEN {sql_string(f'missing event time field {spec.event_time_field!r}')}"
        )
    else:
        v, typed = quote_identifier("v:" + time_col.name), quote_identifier(time_col.name)
        missing = f"missing event time field {spec.event_time_field!r}"
        cases.append(f"WHEN {v} IS NULL OR {v} = '' THEN {sql_string(missing)}")
        cases.append(
            f"WHEN _event_any IS NULL THEN 'event time ' || {v} || "
            f"{sql_string(' is not ' + spec.event_time_format)}"
        )
        cases.append(f"WHEN {typed} IS NULL THEN {_out_of_range(v, spec, bounds)}")
    cases.append(
        f"WHEN {dedup} IS NULL OR {dedup} = '' OR left({dedup}, 1) IN ('{{', '[') THEN "
        f"{sql_string(f'missing or non-scalar dedup key {spec.dedup_key!r}')}"
    )
    for c in columns:
        if c.mask is not None or c.path == (spec.event_time_field,) or c.duck_type in TEXT_TYPES:
            continue
        v = quote_identifier("v:" + c.name)
        cases.append(
            f"WHEN {v} IS NOT NULL AND {quote_identifier(c.name)} IS NULL THEN "
            f"{sql_string(f'column {c.name}: cannot cast ')} || {v} || {sql_string(f' to {c.type}')}"
        )
    return "CASE " + " ".join(cases) + " END"


def _out_of_range(v: str, spec: StreamSpec, bounds: _Bounds) -> str:
    expr = (
        f"{sql_string(OUT_OF_RANGE + ': ')} || left({v}, 64) || "
        f"{sql_string(f' is not within {bounds.lo:%Y-%m-%dT%H:%M:%SZ} .. ')} || {bounds.hi(_utc_text)}"
    )
    if spec.event_time_format == "epoch_seconds":
        lo, hi = repr(bounds.lo.timestamp()), bounds.hi(_epoch)
        hint = sql_string(" (milliseconds in an epoch_seconds stream?)")
        expr += f" || CASE WHEN _event_any / 1000 BETWEEN {lo} AND {hi} THEN {hint} ELSE '' END"
    return expr
