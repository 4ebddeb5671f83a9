"""`SHOW CREATE TABLE`-style Athena/Hive DDL of a catalog table (GetTable's `Table` shape),
for users who create the table by hand instead of syncing Glue, and checks that every
type in it is one Athena accepts.

Identifiers (table, columns, struct fields) are quoted with backticks (a backtick doubled)
and literals with single quotes (backslash escapes, Hive's rules), so no name or value
from the data can end a statement.
"""

from __future__ import annotations

from typing import Any

import sqlglot
from sqlglot import exp

from lake.hive_types import Array, HiveType, Struct, parse_hive

_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\0": "\\0"}


def quote_identifier(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def quote_literal(text: str) -> str:
    return "'" + "".join(_ESCAPES.get(c, c) for c in text) + "'"


def ddl_type(hive: str) -> str:
    """A Glue type string with its struct field names quoted (`type`, `end` are keywords)."""
    return _render(parse_hive(hive))


def _render(t: HiveType) -> str:
    if isinstance(t, Struct):
        inner = ",".join(f"{quote_identifier(n)}:{_render(s)}" for n, s in t.fields.items())
        return f"struct<{inner}>"
    if isinstance(t, Array):
        return f"array<{_render(t.element)}>"
    return t


def show_create_table(table: dict[str, Any]) -> str:
    sd = table["StorageDescriptor"]
    name = f"{quote_identifier(table['DatabaseName'])}.{quote_identifier(table['Name'])}"
    lines = [f"CREATE EXTERNAL TABLE {name}("]
    lines.append(",\n".join(_column(c) for c in sd["Columns"]) + ")")
    if table.get("PartitionKeys"):
        lines.append("PARTITIONED BY (")
        lines.append(",\n".join(_column(c) for c in table["PartitionKeys"]) + ")")
    serde = sd["SerdeInfo"]
    lines.append(f"ROW FORMAT SERDE\n  {quote_literal(serde['SerializationLibrary'])}")
    if serde.get("Parameters"):
        lines.append(f"WITH SERDEPROPERTIES (\n{_properties(serde['Parameters'])})")
    lines.append(f"STORED AS INPUTFORMAT\n  {quote_literal(sd['InputFormat'])}")
    lines.append(f"OUTPUTFORMAT\n  {quote_literal(sd['OutputFormat'])}")
    lines.append(f"LOCATION\n  {quote_literal(sd['Location'])}")
    if table.get("Parameters"):
        lines.append(f"TBLPROPERTIES (\n{_properties(table['Parameters'])})")
    return "\n".join(lines)


def _column(column: dict[str, Any]) -> str:
    text = f"  {quote_identifier(column['Name'])} {ddl_type(column['Type'])}"
    if column.get("Comment"):
        text += f" COMMENT {quote_literal(column['Comment'])}"
    return text


def _properties(params: dict[str, Any]) -> str:
    return ",\n".join(f"  {quote_literal(k)}={quote_literal(str(v))}" for k, v in params.items())


def type_problems(hive: str, path: str = "") -> list[str]:
    """Why Athena would refuse a Glue type: an empty struct, two fields equal but for case
    (Athena's names are case-insensitive), or text Hive's type parser does not read back
    field for field."""
    try:
        parsed = parse_hive(hive)
    except (ValueError, IndexError) as exc:
        return [f"{path}: unparseable type {hive!r}: {exc}"]
    problems = _shape_problems(parsed, path)
    try:
        built = exp.DataType.build(ddl_type(hive), dialect="hive")
    except (sqlglot.errors.ParseError, ValueError) as exc:
        return [*problems, f"{path}: Hive cannot parse {hive!r}: {exc}"]
    if _shape(built) != _shape_of(parsed):
        problems.append(f"{path}: Hive reads {hive!r} as {built.sql('hive')!r}")
    return problems


def _shape_problems(t: HiveType, path: str) -> list[str]:
    if isinstance(t, Array):
        return _shape_problems(t.element, f"{path}[]")
    if not isinstance(t, Struct):
        return []
    if not t.fields:
        return [f"{path}: struct<> (a row type needs at least one field)"]
    out = []
    lowered = [n.lower() for n in t.fields]
    out += [f"{path}: fields equal but for case: {n}" for n in set(lowered) if lowered.count(n) > 1]
    for name, sub in t.fields.items():
        out += _shape_problems(sub, f"{path}.{name}")
    return out


def _shape_of(t: HiveType) -> Any:
    if isinstance(t, Struct):
        return ("struct", [(n, _shape_of(s)) for n, s in t.fields.items()])
    if isinstance(t, Array):
        return ("array", _shape_of(t.element))
    return "scalar"


def _shape(built: exp.DataType) -> Any:
    if built.this == exp.DataType.Type.STRUCT:
        fields = [(c.name, _shape(c.args["kind"])) for c in built.expressions]
        return ("struct", fields)
    if built.this == exp.DataType.Type.ARRAY:
        return ("array", _shape(built.expressions[0]))
    return "scalar"


def table_problems(table: dict[str, Any]) -> list[str]:
    """Everything Athena would refuse in the table: column types, and column names that are
    not unique ignoring case."""
    columns = table["StorageDescriptor"]["Columns"] + table.get("PartitionKeys", [])
    problems = [p for c in columns for p in type_problems(c["Type"], c["Name"])]
    lowered = [c["Name"].lower() for c in columns]
    problems += [f"columns equal but for case: {n}" for n in set(lowered) if lowered.count(n) > 1]
    ddl = show_create_table(table)
    for dialect in ("hive", "athena"):  # Athena's DDL is Hive's
        statements = sqlglot.parse(ddl, read=dialect)
        if len(statements) != 1 or not isinstance(statements[0], exp.Create):
            problems.append(f"the DDL parses into {len(statements)} {dialect} statements")
    return problems
