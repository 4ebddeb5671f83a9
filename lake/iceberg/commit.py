"""Committing a run's files to its Iceberg table: all of them in one transaction.

A run writes its Parquet files first (where lake.layout says), then `commit_files`
registers them as pyiceberg's `add_files` does (no rewrite: the files are the table's data
files; lake.iceberg.data_files, from the footers read once for the schema) and, in the same transaction, removes what the run supersedes (`replace`: the
earlier files of the objects it re-cleaned, or the mart day it rebuilt). A reader sees the
table before the commit or after it, never half a run; a run killed before its commit
leaves the table as it was, and its files unreferenced (a re-run replaces them).

The table is created by the first commit, its schema from the files (column order as
written), partitioned by the day of `TableShape.day_column` (a timestamp or date column;
a column of another type leaves the table unpartitioned) or by identity on a date column
(a daily mart's `dt`), the partition field named `dt` so files pyiceberg writes itself
(compaction) land in the same `dt=` folders. Later commits widen the schema by name
(`union_by_name`: new columns, Iceberg's promotions); a widening Iceberg cannot promote
replaces the column and rewrites the files holding it (lake.iceberg.evolve, .rewrite), in
the same transaction. A concurrent commit to the same table (another hour of the stream)
makes the commit fail and retry on the refreshed table.
"""

from __future__ import annotations

import contextlib
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pyarrow as pa
from pyiceberg.exceptions import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    TableAlreadyExistsError,
)
from pyiceberg.expressions import And, BooleanExpression
from pyiceberg.table import Table, Transaction
from pyiceberg.table.update.snapshot import ExpireSnapshots
from pyiceberg.transforms import DayTransform, IdentityTransform

from lake.iceberg.catalog import LakeTables
from lake.iceberg.data_files import Footer, add_files, read_footer
from lake.iceberg.evolve import evolve_schema, narrower_than_table
from lake.iceberg.rewrite import conform_files, discard, rewrite_files
from lake.iceberg.scan import day_filter, files_of

COMMIT_ATTEMPTS = 8
ADOPTED = "lake.adopted"  # table property: files from before the table are registered
TABLE_PROPERTIES = {
    "format-version": "2",
    "commit.manifest-merge.enabled": "true",  # a micro-batch a minute: merge small manifests
    "write.parquet.compression-codec": "zstd",
}


@dataclass(frozen=True)
class TableShape:
    """How a table is partitioned and which columns keep whole (untruncated) statistics:
    the replace key, so a delete by key drops whole files instead of rewriting them."""

    day_column: str | None = None  # partition by day(column)
    identity_day: bool = False  # the column is already the day (a mart's dt): identity
    whole_stats: tuple[str, ...] = ()


@dataclass
class Committed:
    table: str
    snapshot_id: int | None = None
    files_added: int = 0
    files_removed: int = 0
    files_rewritten: int = 0  # to a replaced column's new type (counted in added/removed)
    files_conformed: int = 0  # the run's own files cast up to the table's wider types
    rows_added: int = 0
    rows_removed: int = 0
    seconds: float = 0.0
    attempts: int = 0
    schema_changes: list[str] = field(default_factory=list)

    def as_metadata(self, prefix: str = "iceberg_") -> dict[str, object]:
        return {
            f"{prefix}table": self.table,
            f"{prefix}snapshot_id": str(self.snapshot_id or ""),
            f"{prefix}files_added": self.files_added,
            f"{prefix}files_removed": self.files_removed,
            f"{prefix}files_rewritten": self.files_rewritten,
            f"{prefix}files_conformed": self.files_conformed,
            f"{prefix}commit_seconds": round(self.seconds, 3),
        }


def commit_files(
    tables: LakeTables,
    layer: str,
    name: str,
    keys: list[str],
    shape: TableShape,
    replace: BooleanExpression | None = None,
    replace_days: list[date] | None = None,
    summary: dict[str, str] | None = None,
    adopt: Callable[[], list[str]] | None = None,
    properties: dict[str, str] | None = None,
    schema_if_new: pa.Schema | None = None,
) -> Committed:
    """Add the lake files `keys` to `<layer namespace>.<name>` and remove the rows matching
    `replace` (within `replace_days`' partitions when given: only their metadata is read),
    in one transaction (retried on a concurrent commit). `adopt` lists the files the
    table's layer held before the table existed (lake.iceberg.adopt): registered by a
    commit of their own, once, before this one. `properties` are set on the table in the
    same transaction. `schema_if_new`: create the table with it when it does not exist
    and there are no files (a mart's first days empty: readers still see its columns)."""
    started = time.perf_counter()
    uris = [tables.uri_of(k) for k in keys]
    table_id = tables.table_id(layer, name)
    committed = Committed(table_id)
    table = tables.load(layer, name)
    properties = dict(properties or {})
    if adopt is not None and (table is None or table.properties.get(ADOPTED) != "true"):
        if _adopt(tables, table, layer, name, shape, adopt):
            table = tables.load(layer, name)
        else:
            properties[ADOPTED] = "true"  # nothing to adopt: this commit marks it done
    if table is None and schema_if_new is not None and not uris:
        table = _create(tables, layer, name, schema_if_new, shape)
    if not uris and replace is None and (table is None or not properties):
        return committed
    schema, json_columns, footers = _footers(table, uris, tables) if uris else (None, set(), {})
    if table is None:
        if schema is None:
            return committed  # nothing to remove from a table that does not exist
        table = _create(tables, layer, name, schema, shape)
    elif schema is not None:
        committed.files_conformed = conform_files(
            table.io, uris, narrower_than_table(table, schema)
        )
        if committed.files_conformed:
            schema, json_columns, footers = _footers(table, uris, tables)
    before = table.current_snapshot()
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        committed.attempts = attempt
        rewritten: list[str] = []
        try:
            tx = table.transaction()
            evolution = evolve_schema(tx, table, schema)
            committed.schema_changes = evolution.changed
            rewritten = rewrite_files(tx, table, evolution.replaced, summary)
            committed.files_rewritten = len(rewritten)
            _no_json_stats(tx, json_columns)
            if properties:
                tx.set_properties(**properties)
            if replace is not None and table.current_snapshot() is not None:
                where = replace
                if replace_days:
                    where = And(replace, day_filter(table, replace_days))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "did not match any records"
                    tx.delete(where, snapshot_properties=summary or {})
            if uris:
                add_files(tx, uris, footers, summary or {})
            table = tx.commit_transaction()
            break
        except CommitFailedException:
            discard(table.io, rewritten)
            if attempt == COMMIT_ATTEMPTS:
                raise
            time.sleep(random.uniform(0.05, 0.2) * attempt)
            table = tables.catalog.load_table(table_id)
            before = table.current_snapshot()
    _count(committed, table, before)
    trim_snapshots(tables, table_id, table, tables.settings.iceberg_max_snapshots)
    committed.seconds = time.perf_counter() - started
    return committed


def _adopt(
    tables: LakeTables,
    table: Table | None,
    layer: str,
    name: str,
    shape: TableShape,
    adopt: Callable[[], list[str]],
) -> bool:
    """Register the files the layer held before the table (those not in it yet) and mark
    the table adopted, in one commit of their own (creating the table when needed); a run
    killed before it adopts on the next. False when there was nothing to adopt."""
    referenced = set() if table is None else set(files_of(table, tables))
    existing = [k for k in adopt() if k not in referenced]
    if not existing:
        return False
    commit_files(
        tables,
        layer,
        name,
        existing,
        shape,
        summary={"lake.adopted-files": str(len(existing))},
        properties={ADOPTED: "true"},
    )
    return True


def with_retries(
    tables: LakeTables, table_id: str, change: Callable[[Table], Transaction]
) -> Table:
    """Run `change` (building a transaction on the table) and commit it, on the refreshed
    table again after a concurrent commit."""
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        table = tables.catalog.load_table(table_id)
        try:
            return change(table).commit_transaction()
        except CommitFailedException:
            if attempt == COMMIT_ATTEMPTS:
                raise
            time.sleep(random.uniform(0.05, 0.2) * attempt)
    raise AssertionError("unreachable")


def trim_snapshots(tables: LakeTables, table_id: str, table: Table, keep: int) -> Table:
    """Expire all but the table's latest `keep` snapshots once it holds a quarter more:
    pyiceberg copies the whole table metadata (every snapshot) several times per commit,
    so a micro-batch's commit costs O(snapshots). Files are left to expire_table."""
    snapshots = sorted(table.snapshots(), key=lambda s: s.timestamp_ms)
    if len(snapshots) <= keep + keep // 4:
        return table
    cutoff = datetime.fromtimestamp(snapshots[-keep].timestamp_ms / 1000, UTC)

    def expire(current: Table) -> Transaction:
        tx = current.transaction()
        ExpireSnapshots(tx).older_than(cutoff).commit()
        return tx

    return with_retries(tables, table_id, expire)


def _count(committed: Committed, table: Table, before: object) -> None:
    """Files and rows added and removed by the snapshots this commit made."""
    stop = getattr(before, "snapshot_id", None)
    snapshot = table.current_snapshot()
    committed.snapshot_id = snapshot.snapshot_id if snapshot else None
    while snapshot is not None and snapshot.snapshot_id != stop:
        props = snapshot.summary.additional_properties if snapshot.summary else {}
        committed.files_added += int(props.get("added-data-files", 0))
        committed.files_removed += int(props.get("deleted-data-files", 0))
        committed.rows_added += int(props.get("added-records", 0))
        committed.rows_removed += int(props.get("deleted-records", 0))
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None


def _footers(
    table: Table | None, uris: list[str], tables: LakeTables
) -> tuple[pa.Schema, set[str], dict[str, Footer]]:
    """The files' unified schema, read as add_files reads it (Parquet's JSON type as a
    string), the names of their JSON columns, and each file's footer (for add_files)."""
    io = table.io if table is not None else tables.catalog._load_file_io(location=uris[0])
    schemas, json_columns, footers = [], set(), {}
    for uri in uris:
        footers[uri] = footer = read_footer(io, uri)
        parquet_schema = footer.metadata.schema
        schemas.append(parquet_schema.to_arrow_schema())
        for i in range(len(parquet_schema)):
            column = parquet_schema.column(i)
            if column.logical_type.type == "JSON" and "." not in column.path:
                json_columns.add(column.path)
    return pa.unify_schemas(schemas, promote_options="permissive"), json_columns, footers


def _no_json_stats(tx: Transaction, json_columns: set[str]) -> None:
    """No min/max for JSON columns: pyiceberg 0.12 cannot serialize Parquet's JSON-typed
    statistics (bytes where it expects text), and bounds of JSON text prune nothing."""
    properties = tx.table_metadata.properties
    wanted = {
        f"write.metadata.metrics.column.{name}": "none"
        for name in json_columns
        if properties.get(f"write.metadata.metrics.column.{name}") != "none"
    }
    if wanted:
        tx.set_properties(**wanted)


def _create(
    tables: LakeTables, layer: str, name: str, schema: pa.Schema, shape: TableShape
) -> Table:
    catalog, table_id = tables.catalog, tables.table_id(layer, name)
    with contextlib.suppress(NamespaceAlreadyExistsError):
        catalog.create_namespace(tables.namespace(layer))
    properties = dict(TABLE_PROPERTIES)
    properties["write.data.path"] = tables.location(layer, name)
    for column in shape.whole_stats:
        properties[f"write.metadata.metrics.column.{column}"] = "full"
    try:
        tx = catalog.create_table_transaction(
            table_id, schema=schema, location=tables.location(layer, name), properties=properties
        )
        _partition(tx, schema, shape)
        return tx.commit_transaction()
    except TableAlreadyExistsError:  # another run created it meanwhile
        return catalog.load_table(table_id)


def _partition(tx: Transaction, schema: pa.Schema, shape: TableShape) -> None:
    column = shape.day_column
    if column is None or column not in schema.names:
        return
    kind = schema.field(column).type
    if shape.identity_day and pa.types.is_date(kind):
        transform = IdentityTransform()
    elif pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        transform = DayTransform()
    else:
        return  # an event time typed as text: no day to partition by (docs/iceberg.md)
    with tx.update_spec() as spec:
        spec.add_field(column, transform, "dt")
