"""A table's schema following its files: new columns by name, Iceberg's promotions.

`union_by_name` adds the columns a run's files bring and applies the promotions Iceberg
allows (int to long, float to double, a wider decimal). A change it cannot promote (the
crawler widening bigint to double or to string: docs/schema-rules.md) raises
IncompatibleSchemaChange naming the columns.
"""

from __future__ import annotations

import pyarrow as pa
from pyiceberg.exceptions import ValidationError
from pyiceberg.table import Table, Transaction


class IncompatibleSchemaChange(ValueError):
    """The files hold a column in a type the table's column cannot be promoted to."""


def evolve_schema(tx: Transaction, table: Table, schema: pa.Schema | None) -> list[str]:
    """Widen the table's schema within `tx` to take files of `schema`; the names of the
    columns added or promoted."""
    if schema is None:
        return []
    current = table.schema()
    known = {f.name: f.field_type for f in current.fields}
    try:
        update = tx.update_schema().union_by_name(schema)
        update.commit()
    except ValidationError as exc:
        raise IncompatibleSchemaChange(str(exc)) from exc
    after = tx.table_metadata.schema()
    return [f.name for f in after.fields if known.get(f.name) != f.field_type]
