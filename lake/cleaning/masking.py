"""The PII masking hook of the typing query: SQL that masks a column's value.

`hash` is HMAC-SHA256 keyed by the padded keys lake.pii.install_key put on the connection;
`redact` is `[REDACTED]` (text) or NULL; the stream's text rules (pii_keys, pii_values) run
as stages of regular expressions over text and JSON columns (lake.pii_rules).
"""

from __future__ import annotations

import dataclasses
import json

from lake.cleaning.columns import TEXT_TYPES, Column
from lake.pii import IPAD_VARIABLE, OPAD_VARIABLE, REDACTED
from lake.pii_rules import PiiRules, text_rule_stages
from lake.sql_text import quote_identifier, sql_string
from lake.streams import StreamSpec


def masking_steps(c: Column, spec: StreamSpec, source: str) -> tuple[str, str]:
    """CTEs `masked_<i>` over `source` rewriting the column's text `v:<name>` into
    `m:<name>` a text rule at a time (lake.pii_rules.text_rule_stages); returns them (each
    ending with `,\\n`) and the relation to read next (`source` when no rule applies)."""
    rules = text_rules(c, spec)
    if rules is None:
        return "", source
    v, m = (quote_identifier(f"{p}:{c.name}") for p in ("v", "m"))
    stages = text_rule_stages(v, m, rules, _hmac_sql, REDACTED)
    ctes = "".join(
        f"masked_{i} AS (SELECT {stage} FROM {source if i == 0 else f'masked_{i - 1}'}),\n"
        for i, stage in enumerate(stages)
    )
    return ctes, f"masked_{len(stages) - 1}"


def masked_value(c: Column, spec: StreamSpec) -> str | None:
    """SQL for a plain column's masked value, or None when the column is not masked."""
    v = quote_identifier("v:" + c.name)
    if c.mask == "hash":
        return _hmac_sql(v)
    if c.mask == "redact":
        return (
            f"CASE WHEN {v} IS NOT NULL THEN {sql_string(REDACTED)} END"
            if c.type == "string"
            else "NULL"
        )
    if text_rules(c, spec) is not None:
        return quote_identifier("m:" + c.name)  # the masking stages' result
    return None


def text_rules(c: Column, spec: StreamSpec) -> PiiRules | None:
    """The text rules (pii_keys, pii_values) that rewrite this column, if any: text and
    JSON columns without a mask of their own (numbers, booleans and times hold no text);
    pii paths reaching inside a JSON field act as keys in its text."""
    if c.mask is not None or c.path == (spec.event_time_field,) or c.duck_type not in TEXT_TYPES:
        return None
    rules = spec.pii.with_keys(dict(c.inner_keys)) if c.json else spec.pii
    return rules if rules.masks_text else None


def json_text(c: Column, spec: StreamSpec) -> str:
    """A JSON field's text, still valid JSON after masking: masked whole, it is the mask
    as a JSON string; else the masking stages' result (a PII key holding an object or a
    number redacted the whole text: kept a JSON string)."""
    v = quote_identifier("v:" + c.name)
    if c.mask == "hash":
        return f"to_json({_hmac_sql(v)})::VARCHAR"
    if c.mask == "redact":
        return f"CASE WHEN {v} IS NOT NULL THEN {sql_string(json.dumps(REDACTED))} END"
    if text_rules(c, spec) is None:
        return v
    m = quote_identifier("m:" + c.name)
    masked = f"CASE WHEN {m} = {sql_string(REDACTED)} THEN {sql_string(json.dumps(REDACTED))} ELSE {m} END"
    if not c.inner_keys:
        return masked
    # a pii path reaches inside: only an object can be masked key by key; any other
    # value (a bare string, an array) is masked whole, failing closed
    whole = "redact" if any(m == "redact" for _, m in c.inner_keys) else "hash"
    as_whole = json_text(dataclasses.replace(c, mask=whole, inner_keys=()), spec)
    return f"CASE WHEN left({v}, 1) = '{{' THEN {masked} ELSE {as_whole} END"


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
