"""Records -> typed, flat, masked rows, or a quarantine reason; as one DuckDB query.

Columns come from the stream's catalog table: every leaf of every struct becomes a
`parent_child` column; arrays are kept whole as JSON text (their element shape varies
from record to record, and Redshift's JSON functions, Athena and DuckDB all read JSON
text, while a nested type would break on the first record whose elements differ); event
time becomes a UTC timestamp.

Each record is parsed once into the list of its leaves as VARCHAR (DuckDB's
`json_extract_string` with one JSON pointer per column: pointers match keys exactly, so
keys that differ only by case, or the empty key, are distinct leaves, where a struct
type would refuse them), then every leaf is cast to its column type; a value that is
present but does not cast gives the record a reason, and a record with a reason is
quarantined with its raw text instead of being half-loaded.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from lake.catalog_store import column_assignment, stored_schema
from lake.column_names import LINEAGE_NAMES, assign_columns
from lake.hive_types import Struct, leaf_columns
from lake.json_fields import Path, collapse_schema, paths_from_parameter
from lake.pii import IPAD_VARIABLE, OPAD_VARIABLE, REDACTED
from lake.pii_rules import PiiRules, text_rule_stages
from lake.record_limits import KEY_TOO_LONG, TOO_DEEP, TOO_MANY_COLUMNS
from lake.streams import StreamSpec

LINEAGE_TYPES = {  # the columns every cleaned file ends with, after the record's own
    "_source_key": "VARCHAR",
    "_position": "BIGINT",
    "_arrival_hour": "TIMESTAMPTZ",
    "_ingested_at": "TIMESTAMPTZ",
}
assert set(LINEAGE_TYPES) == LINEAGE_NAMES
DUCK_TYPES = {
    "boolean": "BOOLEAN",
    "int": "INTEGER",
    "bigint": "BIGINT",
    "double": "DOUBLE",
    "string": "VARCHAR",
    "timestamp": "TIMESTAMPTZ",
    "date": "DATE",
}
_DECIMAL = re.compile(r"decimal\((\d+),\s*(\d+)\)")


@dataclass(frozen=True)
class Column:
    name: str  # flat, safe column name
    path: tuple[str, ...]  # the record's original keys from its root
    type: str  # Hive leaf type (arrays included, stored as JSON text)
    mask: str | None = None
    json: bool = False  # a JSON field (lake.json_fields): its value's JSON text
    inner_keys: tuple[tuple[str, str], ...] = ()  # pii paths inside a JSON field: key, mask

    @property
    def duck_type(self) -> str:
        if self.json:
            return "JSON"
        m = _DECIMAL.fullmatch(self.type)
        return f"DECIMAL({m.group(1)},{m.group(2)})" if m else DUCK_TYPES.get(self.type, "VARCHAR")


def columns_from_table(table: dict[str, Any] | None, spec: StreamSpec) -> list[Column]:
    schema, assigned = stored_schema(table), column_assignment(table)
    return leaf_columns_of(schema, spec, assigned, json_paths_of(table, spec))


def json_paths_of(table: dict[str, Any] | None, spec: StreamSpec) -> frozenset[Path]:
    """The stream's JSON fields: declared ones and those the crawler found (lake.json_fields)."""
    return spec.json.paths | paths_from_parameter(table)


def leaf_columns_of(
    schema: Struct,
    spec: StreamSpec,
    assigned: dict[tuple[str, ...], str] | None = None,
    json_paths: frozenset[Path] | None = None,
) -> list[Column]:
    """Flatten the schema into leaf columns with PII masks, named by the catalog's
    assignment (`assigned`, see lake.column_names); a leaf it lacks gets the name the
    crawler would give it. A JSON field is one column (its JSON text); a promoted
    sub-field of one is a typed column of its own, after the schema's leaves."""
    json_paths = spec.json.paths if json_paths is None else json_paths
    leaves = [
        (flat, path, leaf, path in json_paths)
        for flat, path, leaf in leaf_columns(collapse_schema(schema, json_paths))
    ]
    known = {path for _, path, _, _ in leaves}
    leaves += [(f, p, t, False) for f, p, t in spec.json.promoted() if p not in known]
    names = assign_columns(
        [(flat, path) for flat, path, _, _ in leaves],
        assigned or {},
        spec.limits.max_name_bytes,
        LINEAGE_NAMES,
    )
    columns: list[Column] = []
    for _, path, leaf, is_json in leaves:
        inner: dict[str, str] = {}
        if is_json:
            how, inner = spec.pii.json_column(path)
            leaf = "string"
        else:
            how = spec.pii.column_mask(path)
        if how == "hash":
            leaf = "string"
        columns.append(Column(names[path], path, leaf, how, is_json, tuple(inner.items())))
    return columns


def json_pointer(path: tuple[str, ...]) -> str:
    """RFC 6901: `/` before every key, `~` written `~0` and `/` written `~1`."""
    return "".join("/" + key.replace("~", "~0").replace("/", "~1") for key in path)


def sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def typing_sql(
    source: str,
    columns: list[Column],
    spec: StreamSpec,
    hour: datetime | None = None,
) -> str:
    """SELECT over `source` (columns _object, _position, raw) giving every typed column
    (the raw text stays in `source`: only quarantined records need it),
    `_reason` (NULL when the record is clean), `_key_hi` and `_key_lo` (the dedup key's
    MD5 in two UBIGINT halves) and `_shape`
    (a hash of the record's top-level key list: records share a few shapes, so repeated
    keys and fields the catalog lacks are looked for once per shape, see shape_keys_sql).
    Event times outside the stream's accepted range around the arrival `hour` count as
    missing a value (typed column NULL) and give the record its reason."""
    plain = [c for c in columns if not c.json]
    texts = [c for c in columns if c.json]
    leaves = [f"_l[{i}] AS {quote_identifier('v_' + c.name)}" for i, c in enumerate(plain, 1)]
    # a JSON field's value as JSON text (a string stays quoted); JSON null is no value
    leaves += [
        f"CASE WHEN _j[{i}] <> 'null' THEN _j[{i}] END AS {quote_identifier('v_' + c.name)}"
        for i, c in enumerate(texts, 1)
    ]
    bounds = event_time_bounds(spec, hour)
    typed = [f"{_typed(c, spec, bounds)} AS {quote_identifier(c.name)}" for c in columns]
    reasons = _reasons(columns, spec, bounds)
    extract = f"json_extract_string(raw, {_pointers(plain)})" if plain else "NULL"
    extract_json = f"json_extract(raw, {_pointers(texts)})::VARCHAR[]" if texts else "NULL"
    masking = text_rule_stages(
        [
            (quote_identifier("v_" + c.name), quote_identifier("m_" + c.name), rules)
            for c in columns
            if (rules := _text_rules(c, spec)) is not None
        ],
        _hmac_sql,
        REDACTED,
    )
    masked = "".join(
        f"masked_{i} AS (SELECT {stage} FROM {'leaves' if i == 0 else f'masked_{i - 1}'}),\n"
        for i, stage in enumerate(masking)
    )
    return f"""
WITH parsed AS (
    SELECT _object, _position, raw, _jt,
           {extract} AS _l, {extract_json} AS _j,
           CASE WHEN _jt = 'object' THEN hash(json_keys(raw)) END AS _shape
    FROM (SELECT *, {_JSON_KIND} AS _jt FROM {source})
), leaves AS (
    SELECT _object, _position, _jt, _shape, {", ".join(leaves) or "NULL AS _none"}
    FROM parsed
),
{masked}timed AS (
    SELECT *, {_event_any(columns, spec)} AS _event_any FROM {f"masked_{len(masking) - 1}" if masking else "leaves"}
), typed AS (
    SELECT *, {", ".join(typed) or "NULL AS _none2"},
           md5_number({_dedup_value(columns, spec)}) AS _key_hash
    FROM timed
)
SELECT _object, _position, _shape,
       (_key_hash >> 64)::UBIGINT AS _key_hi, (_key_hash & {(1 << 64) - 1})::UBIGINT AS _key_lo,
       {reasons} AS _reason,
       {", ".join(quote_identifier(c.name) for c in columns)}
FROM typed
"""


def _pointers(columns: list[Column]) -> str:
    return "[" + ", ".join(sql_string(json_pointer(c.path)) for c in columns) + "]::VARCHAR[]"


def event_time_bounds(spec: StreamSpec, hour: datetime | None) -> tuple[datetime, datetime]:
    """The event times a record of the arrival `hour` may carry (both ends included):
    from the stream's earliest_event_time to the end of the hour plus
    max_event_time_ahead_hours. Outside it a date cannot be partitioned or is junk."""
    hour = hour or datetime.now(spec.limits.earliest_event_time.tzinfo)
    ahead = timedelta(hours=1 + spec.limits.max_event_time_ahead_hours)
    return spec.limits.earliest_event_time, hour + ahead


# A record's JSON kind from its first character (DuckDB's reader hands over valid JSON, and
# json_type would parse every record once more).
_JSON_KIND = """CASE left(ltrim(raw), 1) WHEN '{' THEN 'object' WHEN '[' THEN 'array'
    WHEN '"' THEN 'string' WHEN 't' THEN 'boolean' WHEN 'f' THEN 'boolean'
    WHEN 'n' THEN 'null' ELSE 'number' END"""


def quote_identifier(name: str) -> str:
    """A SQL identifier in double quotes (DuckDB and Redshift alike)."""
    return '"' + name.replace('"', '""') + '"'


def _typed(c: Column, spec: StreamSpec, bounds: tuple[datetime, datetime]) -> str:
    v = quote_identifier("v_" + c.name)
    if c.path == (spec.event_time_field,):
        return _event_time(spec.event_time_format, bounds)
    if c.json:
        return _json_text(c, spec)
    if c.mask == "hash":
        return _hmac_sql(v)
    if c.mask == "redact":
        return (
            f"CASE WHEN {v} IS NOT NULL THEN {sql_string(REDACTED)} END"
            if c.type == "string"
            else "NULL"
        )
    if _text_rules(c, spec) is not None:
        return quote_identifier("m_" + c.name)  # the masking stages' result
    return _cast(v, c)


def _text_rules(c: Column, spec: StreamSpec) -> PiiRules | None:
    """The text rules (pii_keys, pii_values) that rewrite this column, if any: text and
    JSON columns without a mask of their own (numbers, booleans and times hold no text);
    pii paths reaching inside a JSON field act as keys in its text."""
    if c.mask is not None or c.path == (spec.event_time_field,) or c.duck_type not in _TEXT:
        return None
    rules = spec.pii.with_keys(dict(c.inner_keys)) if c.json else spec.pii
    return rules if rules.masks_text else None


def _json_text(c: Column, spec: StreamSpec) -> str:
    """A JSON field's text, still valid JSON after masking: masked whole, it is the mask
    as a JSON string; else the masking stages' result (a PII key holding an object or a
    number redacted the whole text: kept a JSON string)."""
    v = quote_identifier("v_" + c.name)
    if c.mask == "hash":
        return f"to_json({_hmac_sql(v)})::VARCHAR"
    if c.mask == "redact":
        return f"CASE WHEN {v} IS NOT NULL THEN {sql_string(json.dumps(REDACTED))} END"
    if _text_rules(c, spec) is None:
        return v
    m = quote_identifier("m_" + c.name)
    masked = f"CASE WHEN {m} = {sql_string(REDACTED)} THEN {sql_string(json.dumps(REDACTED))} ELSE {m} END"
    if not c.inner_keys:
        return masked
    # a pii path reaches inside: only an object can be masked key by key; any other
    # value (a bare string, an array) is masked whole, failing closed
    whole = "redact" if any(m == "redact" for _, m in c.inner_keys) else "hash"
    as_whole = _json_text(dataclasses.replace(c, mask=whole, inner_keys=()), spec)
    return f"CASE WHEN left({v}, 1) = '{{' THEN {masked} ELSE {as_whole} END"


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
    v = quote_identifier("v_" + time_col.name)
    if spec.event_time_format == "epoch_seconds":
        return f"TRY_CAST({v} AS DOUBLE)"
    if spec.event_time_format == "epoch_millis":
        return f"TRY_CAST({v} AS DOUBLE) / 1000"
    return f"TRY_CAST({v} AS TIMESTAMPTZ)"


def _event_time(time_format: str, bounds: tuple[datetime, datetime]) -> str:
    """The event time when it is inside `bounds`, else NULL (never an error)."""
    if time_format in ("epoch_seconds", "epoch_millis"):
        lo, hi = (b.timestamp() for b in bounds)
        return f"to_timestamp(CASE WHEN _event_any BETWEEN {lo!r} AND {hi!r} THEN _event_any END)"
    lo, hi = (sql_string(b.isoformat()) for b in bounds)
    return (
        f"CASE WHEN _event_any BETWEEN {lo}::TIMESTAMPTZ AND {hi}::TIMESTAMPTZ THEN _event_any END"
    )


def _hmac_sql(v: str) -> str:
    """HMAC-SHA256 in SQL (the same hex digest as Python's hmac), keyed by the padded keys
    lake.pii.install_key put on the connection: the key is never in the SQL text, and a
    connection without it fails rather than hashing with no key."""
    missing = sql_string("no PII key on this DuckDB connection (lake.pii.install_key)")
    ipad, opad = (
        f"coalesce(getvariable({sql_string(name)})::BLOB, error({missing})::BLOB)"
        for name in (IPAD_VARIABLE, OPAD_VARIABLE)
    )
    # `v` appears once (NULL in, NULL out through ||): the caller's expression, often a
    # regexp extraction, is not evaluated twice
    return f"sha256({opad} || unhex(sha256({ipad} || encode({v}))))"


def _dedup_value(columns: list[Column], spec: StreamSpec) -> str:
    """SQL for a record's dedup key as text; NULL when no record has carried the key yet
    (every record then has no key, and is quarantined for it)."""
    for c in columns:
        if c.path == (spec.dedup_key,):
            return quote_identifier("v_" + c.name)
    return "NULL::VARCHAR"


def _reasons(columns: list[Column], spec: StreamSpec, bounds: tuple[datetime, datetime]) -> str:
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
        v, typed = quote_identifier("v_" + time_col.name), quote_identifier(time_col.name)
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
        if c.mask is not None or c.path == (spec.event_time_field,) or c.duck_type in _TEXT:
            continue
        v = quote_identifier("v_" + c.name)
        cases.append(
            f"WHEN {v} IS NOT NULL AND {quote_identifier(c.name)} IS NULL THEN "
            f"{sql_string(f'column {c.name}: cannot cast ')} || {v} || {sql_string(f' to {c.type}')}"
        )
    return "CASE " + " ".join(cases) + " END"


_TEXT = ("VARCHAR", "JSON")  # never fail to cast
OUT_OF_RANGE = "event time out of range"


def _out_of_range(v: str, spec: StreamSpec, bounds: tuple[datetime, datetime]) -> str:
    lo, hi = (f"{b:%Y-%m-%dT%H:%M:%SZ}" for b in bounds)
    expr = (
        f"{sql_string(OUT_OF_RANGE + ': ')} || left({v}, 64) || "
        f"{sql_string(f' is not within {lo} .. {hi}')}"
    )
    if spec.event_time_format == "epoch_seconds":
        a, b = (x.timestamp() for x in bounds)
        hint = sql_string(" (milliseconds in an epoch_seconds stream?)")
        expr += f" || CASE WHEN _event_any / 1000 BETWEEN {a!r} AND {b!r} THEN {hint} ELSE '' END"
    return expr


def shape_keys_sql(source: str, typed: str) -> str:
    """(_shape, keys) for every record shape in `typed`, in first-seen record order, the
    keys read from the shape's first record in `source`."""
    return f"""
SELECT f._shape, json_keys(s.raw) AS keys
FROM (SELECT _shape, min(_object * {ROW_SPAN} + _position) AS rid
      FROM {typed} WHERE _shape IS NOT NULL GROUP BY _shape) f
JOIN {source} s ON s._object * {ROW_SPAN} + s._position = f.rid
ORDER BY f.rid"""


ROW_SPAN = 1 << 32  # record id = object index * span + position (positions stay below 2**32)


def repeated_key(keys: list[str]) -> str | None:
    """The first key that appears twice in a record's key list."""
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            return key
        seen.add(key)
    return None


def unknown_fields_sql(source: str, shapes: list[int], pointer: str = "") -> str:
    """The merged JSON structure of the records of the given shapes (those holding
    top-level keys the catalog lacks), or of the value at `pointer` in them."""
    listed = ", ".join(str(h) for h in shapes)
    value = f"json_extract(s.raw, {sql_string(pointer)})" if pointer else "s.raw::JSON"
    return (
        f"SELECT json_group_structure({value}) FROM typed t JOIN {source} s "
        f"USING (_object, _position) WHERE t._shape IN ({listed})"
    )


# Quarantine reason -> short stable code (the `reason_code` column), by the reason's start;
# the first match wins, so longer prefixes come before the shorter ones they begin with.
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


def reason_code(reason: str) -> str:
    return next((code for prefix, code in REASON_CODES if reason.startswith(prefix)), "other")


def reason_code_sql(reason: str) -> str:
    """SQL giving reason_code() of the VARCHAR expression `reason`."""
    cases = " ".join(
        f"WHEN starts_with({reason}, {sql_string(prefix)}) THEN {sql_string(code)}"
        for prefix, code in REASON_CODES
    )
    return f"CASE {cases} ELSE 'other' END"
