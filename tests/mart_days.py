"""A mart partition built and written to the shipped sinks that need no AWS service,
in the asset's order (lake Parquet, Redshift files, warehouse): what a run does for a day."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from lake.mart_build import InputColumns, MartBuild, build_mart
from lake.mart_sinks import (
    LakeParquet,
    MartSink,
    RedshiftFiles,
    SinkOutput,
    WarehouseView,
    write_day,
)
from lake.marts import MartSpec
from lake.storage import Storage
from lake.warehouse import Warehouse


def build_and_write(
    spec: MartSpec,
    day: date | None,
    lake: Storage,
    warehouse: Warehouse,
    columns: InputColumns | None = None,
    extra: Sequence[MartSink] = (),
) -> tuple[MartBuild, SinkOutput]:
    """`extra`: more sinks, after those."""
    built = build_mart(spec, day, lake, columns)
    sinks = [LakeParquet(), RedshiftFiles(), WarehouseView(warehouse), *extra]
    return built, write_day(built, lake, sinks)
