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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from lake import layout
from lake.alerts import Publish, notify_new
from lake.mart_build import MartBuild
from lake.redshift_data_api import RedshiftLoader
from lake.redshift_files import write_redshift_files
from lake.storage import Storage
from lake.warehouse import Warehouse

SinkValue = str | int | bool | list[str]
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


class LakeParquet:
    """`marts/<mart>/dt=<day>/<mart>-0000.parquet` (written even when empty, so marts
    reading it see a typed table); other files of the partition are removed."""

    def write(self, built: MartBuild, lake: Storage) -> SinkOutput:
        key = built.parquet_key
        for stale in list(lake.list(key.rpartition("/")[0] + "/")):
            if built.parquet is None or stale.key != key:
                lake.delete(stale.key)
        if built.parquet is None:
            return {"files": []}
        lake.write(key, built.parquet)
        return {"files": [key]}


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

    def write(self, built: MartBuild, lake: Storage) -> SinkOutput:
        refreshed = self.warehouse.refresh(lake, built.spec.name, built.partition, built.parquet)
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
