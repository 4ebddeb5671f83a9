"""A table's schema following its files: new columns by name, Iceberg's promotions, and the
crawler's other widenings as a replaced column.

`union_by_name` adds the columns a run's files bring and applies the promotions Iceberg
allows (int to long, float to double, a wider decimal). The crawler widens further
(docs/schema-rules.md section 3: bigint to double, date to timestamp, anything to string),
which Iceberg cannot promote: such a column is replaced (deleted and added under the same
name, so a new field id, moved to the end) and `Evolution.replaced` names it with its
new type, for lake.iceberg.rewrite to rewrite every committed file holding it in the old
type within the same transaction. A run's files narrower than the table (typed before the
crawl widened a column) are cast up to the table's type first (narrower_than_table,
lake.iceberg.rewrite.conform_files): a stream is never blocked by it. Any other change
that is no widening raises IncompatibleSchemaChange naming the columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import ValidationError
from pyiceberg.schema import Schema
from pyiceberg.table import Table, Transaction
from pyiceberg.types import (
    DateType,
    DoubleType,
    FloatType,
    IcebergType,
    IntegerType,
    LongType,
    PrimitiveType,
    StringType,
    TimestampType,
    TimestamptzType,
)


class IncompatibleSchemaChange(ValueError):
    """The files hold a column in a type the table's column cannot be widened to."""


@dataclass
class Evolution:
    changed: list[str] = field(default_factory=list)  # columns added, promoted or replaced
    replaced: pa.Schema = field(default_factory=lambda: pa.schema([]))  # in their new types


def evolve_schema(tx: Transaction, table: Table, schema: pa.Schema | None) -> Evolution:
    """Widen the table's schema within `tx` to take files of `schema`."""
    if schema is None:
        return Evolution()
    current = table.schema()
    known = {f.name: f.field_type for f in current.fields}
    replaced = _widened_beyond_promotion(current, schema)
    if replaced:
        _replace_columns(tx, replaced)
    try:
        tx.update_schema().union_by_name(schema).commit()
    except ValidationError as exc:
        raise IncompatibleSchemaChange(str(exc)) from exc
    after = tx.table_metadata.schema()
    return Evolution(
        changed=[f.name for f in after.fields if known.get(f.name) != f.field_type],
        replaced=pa.schema([schema.field(name) for name in replaced]),
    )


def narrower_than_table(table: Table, schema: pa.Schema) -> pa.Schema:
    """Top-level columns the files hold in a type the table's column is a widening of (a
    run typed before the crawl widened the column): in the table's Arrow types, for
    lake.iceberg.rewrite.conform_files to cast the files to."""
    incoming = Catalog._convert_schema_if_needed(schema)
    current = table.schema()
    known = {f.name: f.field_type for f in current.fields}
    names = [
        f.name
        for f in incoming.fields
        if f.name in known and crawler_widens(f.field_type, known[f.name])
    ]
    arrow = current.as_arrow()
    return pa.schema([arrow.field(name) for name in names])


def _widened_beyond_promotion(current: Schema, schema: pa.Schema) -> dict[str, IcebergType]:
    """Top-level columns the files hold in a type the crawler widened to and Iceberg cannot
    promote to: name -> the files' type."""
    incoming = Catalog._convert_schema_if_needed(schema)  # pyiceberg's own Arrow mapping
    replaced = {}
    for new in incoming.fields:
        old = next((f for f in current.fields if f.name == new.name), None)
        if old is not None and crawler_widens(old.field_type, new.field_type):
            replaced[new.name] = new.field_type
    return replaced


def crawler_widens(old: IcebergType, new: IcebergType) -> bool:
    """A widening of docs/schema-rules.md section 3 that Iceberg has no promotion for."""
    if not isinstance(old, PrimitiveType) or old == new:
        return False
    if isinstance(new, StringType):
        return True  # any other scalar to string
    if isinstance(new, DoubleType):
        return isinstance(old, IntegerType | LongType)
    if isinstance(new, TimestampType | TimestamptzType):
        return isinstance(old, DateType)
    if isinstance(new, FloatType):
        return isinstance(old, IntegerType)
    return False


def _replace_columns(tx: Transaction, replaced: dict[str, IcebergType]) -> None:
    """Delete and add each column under its name: a new field id, at the end (pyiceberg
    cannot move a column added under a name deleted in the same update)."""
    with tx.update_schema() as update:
        for name, kind in replaced.items():
            update.delete_column(name)
            update.add_column(name, kind)
