"""What Redshift needs to load a mart: CREATE TABLE DDL, a COPY manifest, a load script.

Types follow Redshift's COPY rules for Parquet (the column order and types of the mart's
Parquet files are the table's): integers to SMALLINT/INTEGER/BIGINT, doubles to DOUBLE
PRECISION, decimals to DECIMAL(p,s), UTC timestamps to TIMESTAMPTZ, strings to
VARCHAR(n) with n the longest value in bytes (rounded up, so a day with longer values
rarely needs a wider column), nested values (lists, structs, maps) to SUPER, loaded with
SERIALIZETOJSON. A JSON text column (Arrow's JSON extension type, Parquet's JSON logical
type: a cleaned JSON field, lake.json_fields) is SUPER too, but COPY would load its text
as one SUPER string (SERIALIZETOJSON serializes only Parquet's nested types): it is
copied into a VARCHAR(65535) column of the staging table and parsed with JSON_PARSE on
the way into the target. Everything written here parses with sqlglot's Redshift dialect
(tested).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from lake.marts import MartSpec
from lake.sql_text import quote_identifier, sql_string

SCHEMA = "marts"
MAX_VARCHAR = 65535
MIN_VARCHAR = 16


class RedshiftTypeError(ValueError):
    """A mart column whose type Redshift cannot load from Parquet."""


@dataclass(frozen=True)
class RedshiftColumn:
    name: str
    type: str  # Redshift type, e.g. VARCHAR(64)
    nested: bool = False
    json_text: bool = False  # JSON text in Parquet: staged as VARCHAR, then JSON_PARSE

    @property
    def width(self) -> int | None:
        return int(self.type[8:-1]) if self.type.startswith("VARCHAR(") else None


def columns_of(table: pa.Table, known: dict[str, int] | None = None) -> list[RedshiftColumn]:
    """Redshift columns for a mart result; `known` holds VARCHAR widths already deployed
    (columns never get narrower)."""
    known = known or {}
    return [
        _column(field, table.column(field.name), known.get(field.name)) for field in table.schema
    ]


def _column(field: pa.Field, values: pa.ChunkedArray, known_width: int | None) -> RedshiftColumn:
    t = field.type
    name = field.name
    if isinstance(t, pa.JsonType):
        longest = pc.max(pc.binary_length(values.cast(pa.string()))).as_py() or 0
        _round_up(longest)  # the staging VARCHAR holds it, or the mart is refused
        return RedshiftColumn(name, "SUPER", json_text=True)
    if pa.types.is_nested(t):
        return RedshiftColumn(name, "SUPER", nested=True)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        longest = pc.max(pc.binary_length(values)).as_py() or 0
        return RedshiftColumn(name, f"VARCHAR({max(_round_up(longest), known_width or 0)})")
    if pa.types.is_timestamp(t):
        return RedshiftColumn(name, "TIMESTAMPTZ" if t.tz else "TIMESTAMP")
    simple = {
        pa.bool_(): "BOOLEAN",
        pa.int8(): "SMALLINT",
        pa.int16(): "SMALLINT",
        pa.int32(): "INTEGER",
        pa.int64(): "BIGINT",
        pa.uint8(): "SMALLINT",
        pa.uint16(): "INTEGER",
        pa.uint32(): "BIGINT",
        pa.float32(): "REAL",
        pa.float64(): "DOUBLE PRECISION",
        pa.date32(): "DATE",
    }
    if t in simple:
        return RedshiftColumn(name, simple[t])
    if pa.types.is_decimal(t):
        if t.precision > 38:
            raise RedshiftTypeError(f"column {name}: {t} is wider than Redshift's DECIMAL(38)")
        return RedshiftColumn(name, f"DECIMAL({t.precision},{t.scale})")
    raise RedshiftTypeError(f"column {name}: {t} has no Redshift type for a Parquet COPY")


def _round_up(length: int) -> int:
    """The next power of two at or above `length`, within Redshift's VARCHAR limits."""
    width = MIN_VARCHAR
    while width < length:
        width *= 2
    if length > MAX_VARCHAR:
        raise RedshiftTypeError(f"a value of {length} bytes is longer than VARCHAR(65535)")
    return min(width, MAX_VARCHAR)


def table_name(spec: MartSpec) -> str:
    return f"{SCHEMA}.{quote_identifier(spec.name)}"


def create_table_ddl(spec: MartSpec, columns: list[RedshiftColumn]) -> str:
    """CREATE TABLE with DISTSTYLE/DISTKEY/SORTKEY from the mart file's header."""
    names = {c.name for c in columns}
    for key in (spec.distkey, *spec.sortkey):
        if key and key not in names:
            raise RedshiftTypeError(f"{spec.path.name}: key column {key!r} is not in the result")
    body = ",\n".join(f"    {quote_identifier(c.name)} {c.type}" for c in columns)
    ddl = f"CREATE TABLE IF NOT EXISTS {table_name(spec)} (\n{body}\n)"
    ddl += f"\nDISTSTYLE {spec.diststyle.upper()}"
    if spec.diststyle == "key" and spec.distkey:
        ddl += f" DISTKEY ({quote_identifier(spec.distkey)})"
    if spec.sortkey:
        ddl += f"\nCOMPOUND SORTKEY ({', '.join(quote_identifier(k) for k in spec.sortkey)})"
    return ddl + ";\n"


def manifest(entries: list[tuple[str, int]]) -> str:
    """A COPY manifest: every file mandatory, with its size (`meta.content_length`, which
    Redshift requires for Parquet manifests)."""
    return json.dumps(
        {
            "entries": [
                {"url": url, "mandatory": True, "meta": {"content_length": size}}
                for url, size in entries
            ]
        },
        indent=1,
    )


def load_statements(
    spec: MartSpec,
    columns: list[RedshiftColumn],
    manifest_url: str,
    day: str | None,
    widened: list[RedshiftColumn],
    iam_role: str = "default",
    added: list[RedshiftColumn] | None = None,
) -> tuple[list[str], list[str]]:
    """(setup, transaction): the setup creates the schema and table, adds the columns
    the deployed table lacks (`added`, appended: they must be the result's last, COPY maps
    Parquet columns by position) and widens VARCHARs (Redshift will not alter a column
    inside a transaction); the transaction COPYs the partition into a staging table and
    replaces the partition in the target by its `dt`, never by the unique key: a key
    column may be NULL, so a re-run of the same day replaces it again, never doubles
    it."""
    added = added or []
    if added and [c.name for c in columns[-len(added) :]] != [c.name for c in added]:
        raise RedshiftTypeError(
            f"{spec.path.name}: new columns ({', '.join(c.name for c in added)}) must come "
            "last in the SELECT: Redshift adds a column at the end of the table"
        )
    target = table_name(spec)
    stage = quote_identifier(f"stage_{spec.name}")
    role = "default" if iam_role == "default" else _literal(iam_role, "REDSHIFT_IAM_ROLE")
    manifest_literal = _literal(manifest_url, "the manifest's URL (LAKE_URI)")
    nested = " SERIALIZETOJSON" if any(c.nested for c in columns) else ""
    setup = [f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}", create_table_ddl(spec, columns).strip()]
    setup += [f"ALTER TABLE {target} ADD COLUMN {quote_identifier(c.name)} {c.type}" for c in added]
    setup += [
        f"ALTER TABLE {target} ALTER COLUMN {quote_identifier(c.name)} TYPE {c.type}"
        for c in widened
    ]
    transaction = [
        _stage_table(stage, target, columns),
        f"COPY {stage} FROM {manifest_literal} IAM_ROLE {role} FORMAT AS PARQUET{nested} MANIFEST",
        f"DELETE FROM {target} WHERE dt = DATE '{day}'" if day else f"DELETE FROM {target}",
        f"INSERT INTO {target} SELECT {_staged_values(columns)} FROM {stage}",
        f"DROP TABLE {stage}",
    ]
    return [s.rstrip(";") for s in setup], transaction


def _stage_table(stage: str, target: str, columns: list[RedshiftColumn]) -> str:
    if not any(c.json_text for c in columns):
        return f"CREATE TEMP TABLE {stage} (LIKE {target})"
    body = ", ".join(
        f"{quote_identifier(c.name)} {f'VARCHAR({MAX_VARCHAR})' if c.json_text else c.type}"
        for c in columns
    )
    return f"CREATE TEMP TABLE {stage} ({body})"


def _staged_values(columns: list[RedshiftColumn]) -> str:
    if not any(c.json_text for c in columns):
        return "*"
    return ", ".join(
        f"JSON_PARSE({quote_identifier(c.name)})" if c.json_text else quote_identifier(c.name)
        for c in columns
    )


_UNSAFE_IN_LITERAL = re.compile(r"['\\\x00-\x1f\x7f]")


class UnsafeLiteralError(ValueError):
    """A setting that would have to be escaped inside a Redshift string literal."""


def _literal(text: str, what: str) -> str:
    """A Redshift string literal of `text`, refused when it holds a quote, a backslash or
    a control character (no URL or role ARN needs one, and Redshift's escaping of
    backslashes depends on settings): a setting never becomes a statement of its own."""
    if _UNSAFE_IN_LITERAL.search(text):
        raise UnsafeLiteralError(f"{what} {text!r} holds a quote, backslash or control character")
    return sql_string(text)


def load_script(setup: list[str], transaction: list[str]) -> str:
    """The load (see load_statements) as one script, to run with psql or the query editor."""
    return ";\n".join([*setup, "BEGIN", *transaction, "COMMIT"]) + ";\n"
