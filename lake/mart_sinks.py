"""Where a built mart partition goes: one sink a target.

A sink takes a built partition (lake.mart_build.MartBuild: the mart's spec, its day, the
result as an Arrow table, its columns, its Parquet bytes) and the lake storage, writes
its target, and returns what it did as named plain values (`SinkOutput`); the asset shows
them as the partition's metadata, a list as JSON. Adding a target is adding a class with
a `write` method and putting it in the asset's list.

`write_day` runs the sinks in their order, and the order is part of the contract: the
lake's Parquet file is the source of truth and the other sinks read it (the Redshift
manifest names it and gives its size, the warehouse copies the lake's partitions), so
`LakeParquet` must come first. The shipped order is lake, Redshift files (and their load),
warehouse (never raises), alerts (an anomaly is notified once its day is everywhere).

Each sink runs for every partition, also one with no result (an input not built yet):
the lake sink then removes the partition's files and the warehouse drops its copy.

With the lake's tables, the lake sink registers each build's file in the Iceberg table
`<MARTS_NAMESPACE>.<mart>` (table location `marts/<mart>`; a daily mart partitioned by
identity on its `dt`), adding the new file and removing the partition's earlier ones in
one transaction; each build's file has a new name, so no file a snapshot references is
overwritten, and earlier files are deleted only once the commit is in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from pyiceberg.expressions import AlwaysTrue, BooleanExpression, EqualTo

from lake import layout
from lake.alerts import Publish, notify_new
from lake.iceberg.adopt import mart_files
from lake.iceberg.catalog import MARTS, LakeTables
from lake.iceberg.commit import Committed, TableShape, commit_files
from lake.iceberg.scan import committed_keys
from lake.mart_build import MartBuild
from lake.redshift_data_api import RedshiftLoader
from lake.redshift_files import write_redshift_files
from lake.storage import Storage
from lake.warehouse import Warehouse

SinkValue = str | int | float | bool | list[str]
SinkOutput = dict[str, SinkValue]  # metadata name -> value, for one partition


class MartSink(Protocol):
    def write(self, built: MartBuild, lake: Storage) -> SinkOutput:
        """Write the partition to this sink's target; what was done, by name."""
        ...


def write_day(built: MartBuild, lake: Storage, sinks: Sequence[MartSink]) -> SinkOutput:
    """Hand a built partition to each sink in order; their outputs, merged (two sinks
    naming the same value is a programming error, not something to overwrite)."""
    if sinks and not isinstance(sinks[0], LakeParquet):
        raise ValueError("LakeParquet must be the first sink: the others read its files")
    merged: SinkOutput = {}
    for sink in sinks:
        output = sink.write(built, lake)
        if clash := merged.keys() & output.keys():
            raise ValueError(f"{type(sink).__name__} repeats {', '.join(sorted(clash))}")
        merged.update(output)
    return merged


@dataclass
class LakeParquet:
    """`marts/<mart>/dt=<day>/<mart>-<token>.parquet`, a new file each build (written even
    when empty, so the Redshift load and the warehouse see a typed table), registered in
    the mart's Iceberg table when `tables` is given; the partition's other files are
    removed after that commit. Without `tables` (core tests) the files alone are the mart."""

    tables: LakeTables | None = None

    def write(self, built: MartBuild, lake: Storage) -> SinkOutput:
        key = built.parquet_key
        earlier = [k for k in partition_files(lake, built) if k != key]
        output: SinkOutput = {"files": []}
        if built.parquet is not None:
            lake.write(key, built.parquet)
            output["files"] = [key]
        if self.tables is not None:
            # an empty result is no data file of the table: Iceberg could not place its
            # rows (it has none) in a partition; the commit only removes the day's rows
            added = [key] if built.rows else []
            output |= _commit_partition(self.tables, built, added, lake).as_metadata()
        for stale in earlier:
            lake.delete(stale)
        return output


def partition_files(lake: Storage, built: MartBuild) -> list[str]:
    """The Parquet files in the partition's folder (not in the folders below it: an
    unpartitioned mart's folder also holds its table's metadata)."""
    folder = layout.mart_partition_folder(built.spec.name, built.day)
    return [
        info.key
        for info in lake.list(folder)
        if info.key.endswith(".parquet") and "/" not in info.key[len(folder) :]
    ]


def _commit_partition(
    tables: LakeTables, built: MartBuild, keys: list[str], lake: Storage
) -> Committed:
    """`keys` replace the partition's rows in `<MARTS_NAMESPACE>.<mart>`: one transaction."""
    replace: BooleanExpression = AlwaysTrue()
    shape = TableShape()
    if built.day is not None:
        replace, shape = EqualTo("dt", built.day.isoformat()), TableShape("dt", identity_day=True)
    return commit_files(
        tables,
        MARTS,
        built.spec.name,
        keys,
        shape,
        replace=replace,
        replace_days=[built.day] if built.day else None,
        summary={"lake.mart": built.spec.name, "lake.partition": built.partition or "all"},
        adopt=partial(mart_files, lake, built.spec.name),
        schema_if_new=None if built.result is None else built.result.schema,
    )


@dataclass
class RedshiftFiles:
    """The DDL, manifest and load script (lake.redshift_files); with a loader (the Data
    API configured) the load script is run."""

    iam_role: str = "default"
    loader: RedshiftLoader | None = None
    log: Any = None

    def write(self, built: MartBuild, lake: Storage) -> SinkOutput:
        output: SinkOutput = {"redshift_files": [], "redshift_loaded": self.loader is not None}
        if built.result is None or built.parquet is None:
            return output
        files = write_redshift_files(
            lake,
            built.spec,
            built.day,
            built.parquet_key,
            len(built.parquet),
            built.result,
            self.iam_role,
        )
        if self.loader is not None:
            load = layout.redshift_load_script(built.spec.name, built.day)
            self.loader.run_script(lake.read(load).decode(), self.log)
        return output | {"redshift_files": files}


@dataclass
class WarehouseView:
    """The partition's copy under the DuckDB warehouse, whose `marts.<mart>` is a view
    over the copies (lake.warehouse); a view it could not make is reported pending."""

    warehouse: Warehouse
    log: Any = None
    tables: LakeTables | None = None  # given: the copies are the table's committed files

    def write(self, built: MartBuild, lake: Storage) -> SinkOutput:
        committed = None
        if self.tables is not None:
            committed = set(committed_keys(self.tables, MARTS, built.spec.name) or [])
            if built.parquet is not None:  # an empty day's typed file: its state, no rows
                committed.add(built.parquet_key)
        refreshed = self.warehouse.refresh(
            lake, built.spec.name, built.partition, built.parquet, committed
        )
        if refreshed.pending and self.log is not None:
            self.log.warning(
                f"marts.{built.spec.name} is not in the warehouse yet: {refreshed.pending}"
            )
        return {
            "warehouse_table": f"marts.{built.spec.name}",
            "warehouse_pending": refreshed.pending or "",
        }


@dataclass
class AlertNotices:
    """Each new anomaly of an alert mart notified once (lake.alerts); `target` names
    where (`log`, `sns:<topic>`)."""

    publish: Publish
    target: str

    def write(self, built: MartBuild, lake: Storage) -> SinkOutput:
        output: SinkOutput = {"alerts_target": self.target}
        if built.result is None:
            return output | {"alerts_notified": [], "alerts_already_notified": 0}
        run = notify_new(lake, built.spec.name, built.result, self.publish)
        return output | {
            "alerts_notified": run.notified,
            "alerts_already_notified": len(run.already_notified),
        }
