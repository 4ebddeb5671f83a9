"""The DuckDB warehouse as views over local copies of the mart files.

The lake is the source of truth. Each mart partition written to the lake is also copied
to `<warehouse folder>/<warehouse name>_marts/<mart>/<partition>/part.parquet` (a temp
file and a rename, so a reader sees the old or the new file), and the warehouse holds
`marts.<mart>` as a view over those files (`union_by_name`, so new columns show up
without rewriting it). A mart run therefore writes the warehouse file only to create a
view it has not made yet; then it waits for the DuckDB lock at most `lock_wait_s` and,
failing that (a reader holds the file open), reports the view as pending and the next
run makes it. Readers holding the warehouse open never block or fail a mart run, and
see new partitions on their next query.

Every run also copies partitions the lake has and the copy lacks, and removes those the
lake no longer has, so a run killed between the lake and the copy heals on the next.

The Iceberg tables of a stream (`cleaned.<stream>`, `quarantine.<stream>`, namespaces as
the catalog names them) are views too, made by `expose_stream` after each cleaning commit:
over `<warehouse folder>/<warehouse name>_tables/<namespace>/<stream>/dt=*/`, a folder of
symlinks to the table's committed data files in place (no copy) that lake.table_links
keeps in step with the table's snapshots, typed by the table's schema (a column absent
from older files reads as NULL), plus `dt` from the `dt=` folders. A batch therefore costs
the files its commit added or removed, not the stream's: the view reads the folder by a
glob when queried and is made again only when its text changes (a column or a type, the
first file). An S3 lake cannot be read by DuckDB here (no httpfs offline), so the
warehouse then holds the mart copies only.

Given the mart table's committed files, those are the lake's partitions (a file a run
wrote but did not commit, or one its commit replaced, is never copied).
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
from pyiceberg.table import Table

from lake import layout
from lake.column_cast import duck_types
from lake.iceberg.catalog import CLEANED, QUARANTINE, LakeTables
from lake.literal_paths import GLOB_CHARACTERS
from lake.settings import DEFAULTS
from lake.sql_text import quote_identifier, sql_string
from lake.storage import LocalStorage, Storage
from lake.table_links import GLOB as LINK_GLOB
from lake.table_links import sync_links

PART_FILE = "part.parquet"
VIEW_MARKER = ".view.sql"  # the view SQL last made, beside what it reads
S3_LAKE = "the lake is on S3, which DuckDB cannot read here (no httpfs): mart copies only"
_PARTITION = re.compile(r"^dt=\d{4}-\d{2}-\d{2}$")


@dataclass
class WarehouseRefresh:
    view_ready: bool  # marts.<mart> exists in the warehouse
    pending: str | None = None  # why not: it is made by a later run


class Warehouse:
    def __init__(
        self, path: str | Path, lock_wait_s: float = DEFAULTS.warehouse_lock_wait_seconds
    ) -> None:
        self.path = Path(path)
        self.copies = self.path.parent / f"{self.path.stem}_marts"
        self.links = self.path.parent / f"{self.path.stem}_tables"
        self.lock_wait_s = lock_wait_s

    def refresh(
        self,
        lake: Storage,
        mart: str,
        partition: str | None,
        data: bytes | None,
        committed: set[str] | None = None,
    ) -> WarehouseRefresh:
        """After a partition was written to the lake (`data`; None: removed), bring the
        local copy in line with the lake (`committed`: the mart table's files) and make sure
        the view exists. Never raises for the warehouse's sake: the lake side is done, so a
        failure here is reported as pending."""
        try:
            self._put_partition(mart, partition, data)
            return self._sync_and_view(lake, mart, committed)
        except (duckdb.Error, OSError) as exc:
            return WarehouseRefresh(False, f"warehouse refresh failed: {exc}")

    def _put_partition(self, mart: str, partition: str | None, data: bytes | None) -> None:
        target = self.copies / safe_name(mart) / (partition or "all") / PART_FILE
        if data is None:
            target.unlink(missing_ok=True)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(target, data)

    def _sync_and_view(
        self, lake: Storage, mart: str, committed: set[str] | None
    ) -> WarehouseRefresh:
        folder = self.copies / safe_name(mart)
        sync_copy(lake, layout.mart_folder(mart), folder, committed)
        if not any(folder.glob(f"*/{PART_FILE}")):
            return WarehouseRefresh(False, "no partition yet")
        if GLOB_CHARACTERS & set(str(folder)):
            return WarehouseRefresh(False, f"WAREHOUSE_PATH folder {folder} has glob characters")
        source = sql_string(str(folder / "*" / PART_FILE))
        view_sql = (
            f"CREATE OR REPLACE VIEW marts.{quote_identifier(mart)} AS "
            f"SELECT * FROM read_parquet({source}, union_by_name=true, hive_partitioning=false)"
        )
        marker = folder / VIEW_MARKER
        if marker.exists() and marker.read_text() == view_sql and self.path.exists():
            return WarehouseRefresh(True)
        con, busy = self._open()
        if con is None:
            return busy
        try:
            con.execute("CREATE SCHEMA IF NOT EXISTS marts")
            kind = con.execute(
                "SELECT table_type FROM information_schema.tables "
                "WHERE table_schema = 'marts' AND table_name = ?",
                [mart],
            ).fetchall()
            if kind and kind[0][0] != "VIEW":  # a table of the earlier layout
                con.execute(f"DROP TABLE marts.{quote_identifier(mart)}")
            con.execute(view_sql)
        finally:
            con.close()
        _write_atomically(marker, view_sql.encode())
        return WarehouseRefresh(True)

    def expose_stream(self, lake: Storage, tables: LakeTables, stream: str) -> WarehouseRefresh:
        """`cleaned.<stream>` and `quarantine.<stream>` as views over the tables' committed
        files: each table's links (lake.table_links) are brought to its current snapshot,
        and the view, a glob over them, is made only when its text changes (a new table,
        a column or type change, the first or last file). Never raises for the
        warehouse's sake: what it cannot make is pending."""
        if not isinstance(lake, LocalStorage):
            return WarehouseRefresh(False, S3_LAKE)
        views, pending = [], []
        for layer in (CLEANED, QUARANTINE):
            table = tables.load(layer, stream)
            if table is None:
                continue  # nothing committed to it yet (a stream that never quarantined)
            schema = tables.namespace(layer)
            folder = self.links / safe_name(schema) / safe_name(stream)
            if GLOB_CHARACTERS & set(str(folder)):
                pending.append(f"WAREHOUSE_PATH folder {folder} has glob characters")
                continue
            state = sync_links(folder, table, tables, lake)
            if state.unsafe:
                pending.append(
                    f"{len(state.unsafe)} files of {tables.table_id(layer, stream)} are in "
                    "no dt= folder"
                )
                continue
            paths = [str(folder / LINK_GLOB)] if state.files else []
            views.append((folder, schema, view_sql(schema, stream, table, paths)))
        try:
            made = self._make_views(views)
        except duckdb.Error as exc:
            return WarehouseRefresh(False, f"warehouse refresh failed: {exc}")
        if made is not None:
            pending.append(made)
        return WarehouseRefresh(not pending, "; ".join(pending) or None)

    def _make_views(self, views: list[tuple[Path, str, str]]) -> str | None:
        """Create each (links folder, schema, view SQL) whose SQL is not the one made last
        time (kept beside its links); why not when the warehouse is busy."""
        views = [
            v for v in views if not (self.path.exists() and _read_text(v[0] / VIEW_MARKER) == v[2])
        ]
        if not views:
            return None
        con, busy = self._open()
        if con is None:
            return busy.pending
        try:
            for _, schema, sql in views:
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(schema)}")
                con.execute(sql)
        finally:
            con.close()
        for folder, _, sql in views:
            _write_atomically(folder / VIEW_MARKER, sql.encode())
        return None

    def _open(self) -> tuple[duckdb.DuckDBPyConnection | None, WarehouseRefresh]:
        """A writing connection, or None and the pending refresh when others hold the file."""
        try:
            return self._connect(), WarehouseRefresh(True)
        except duckdb.IOException as exc:
            return None, WarehouseRefresh(False, f"warehouse busy: {str(exc).splitlines()[0]}")

    def _connect(self) -> duckdb.DuckDBPyConnection:
        """Open for writing; a reader or writer elsewhere holds DuckDB's lock: wait a little."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_wait_s
        while True:
            try:
                return duckdb.connect(str(self.path))
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                    raise
                time.sleep(0.25)


def view_sql(schema: str, name: str, table: Table, paths: list[str]) -> str:
    """A view over the literal `paths` with the table's columns and types (NULL where a
    file lacks a column) and `dt` from the files' `dt=` folders."""
    arrow = table.schema().as_arrow()
    if "dt" not in arrow.names:
        arrow = arrow.append(pa.field("dt", pa.date32()))
    types = duck_types(arrow)
    typed = ", ".join(f"NULL::{t} AS {quote_identifier(n)}" for n, t in types.items())
    rows = f"SELECT {typed} WHERE false"
    if paths:
        files = ", ".join(sql_string(p) for p in paths)
        rows += (
            f" UNION ALL BY NAME SELECT * FROM read_parquet([{files}], union_by_name=true, "
            "hive_partitioning=true, hive_types={'dt': DATE})"
        )
    columns = ", ".join(
        f"CAST({quote_identifier(n)} AS {t}) AS {quote_identifier(n)}" for n, t in types.items()
    )
    return (
        f"CREATE OR REPLACE VIEW {quote_identifier(schema)}.{quote_identifier(name)} AS "
        f"SELECT {columns} FROM ({rows})"
    )


def safe_name(name: str) -> str:
    """A folder name for a mart: letters, digits, `-_.` kept, anything else `~hh`."""
    return "".join(
        c if (c.isascii() and c.isalnum()) or c in "-_" else f"~{ord(c):02x}" for c in name
    )


def sync_copy(lake: Storage, prefix: str, folder: Path, committed: set[str] | None = None) -> None:
    """Make `folder/<partition>/part.parquet` the lake's `<prefix><partition>/*.parquet`
    (one file a partition: `all` for an unpartitioned mart), only files in `committed`
    when given."""
    wanted = {}
    for info in lake.list(prefix):
        if committed is not None and info.key not in committed:
            continue
        rest = info.key[len(prefix) :]
        part, _, name = rest.rpartition("/")
        if not name.endswith(".parquet") or "/" in part:
            continue
        if part and not _PARTITION.match(part):
            continue
        wanted[part or "all"] = info
    for existing in folder.glob(f"*/{PART_FILE}") if folder.exists() else []:
        if existing.parent.name not in wanted:
            existing.unlink()
    for part, info in wanted.items():
        target = folder / part / PART_FILE
        if target.exists():
            stat = target.stat()
            if stat.st_size == info.size and stat.st_mtime >= info.last_modified.timestamp():
                continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{uuid.uuid4().hex}.tmp")
        with lake.open(info.key) as body, open(tmp, "wb") as out:
            shutil.copyfileobj(body, out, 1 << 20)
        os.replace(tmp, target)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
