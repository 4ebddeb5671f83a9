"""Column lineage of a mart: each column it produces -> the input columns computed into it.

sqlglot qualifies the mart's SQL against the columns of its inputs (the views the build
read, so `SELECT *` over a CTE and unqualified names resolve) and walks each output
column back through CTEs and subqueries to the cleaned or mart columns it is computed
from. Filters, joins and GROUP BY are not lineage: `count(*)` depends on no column.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.lineage import lineage

from lake.marts import MartSpec

InputColumn = tuple[str, str, str]  # (layer, table, column)


def column_lineage(
    spec: MartSpec, inputs: dict[str, dict[str, list[str]]]
) -> dict[str, list[InputColumn]]:
    """{output column: sorted input columns}; `inputs` is layer -> table -> column names.
    Raises sqlglot.errors.SqlglotError when the SQL cannot be qualified against them."""
    schema = {
        layer: {table: dict.fromkeys(columns, "UNKNOWN") for table, columns in tables.items()}
        for layer, tables in inputs.items()
    }
    nodes = lineage(None, spec.sql, schema=schema, dialect="duckdb")
    out: dict[str, list[InputColumn]] = {}
    for output, node in nodes.items():
        sources = set()
        for step in node.walk():
            if step.downstream or not isinstance(step.source, exp.Table):
                continue
            column = sqlglot.parse_one(step.name, read="duckdb", into=exp.Column)
            sources.add((step.source.db, step.source.name, column.name))
        out[output] = sorted(sources)
    return out
