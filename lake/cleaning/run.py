"""One cleaning run of a stream, whatever runs it: the cleaned/<stream> asset in the run's
process, or a Dagster Pipes worker (workers/clean.py) in a subprocess or an ECS task.

`clean_run` lists the hours, cleans them in one session, commits once, retypes, exposes
the warehouse views, then totals each hour. Its metadata is in the Pipes wire form (plain
values, or `{"type": ..., "raw_value": ...}` for JSON and table schemas), so the asset
reads the same dict whether it came from this process or from a worker's messages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from lake import layout
from lake.catalog_store import Catalog
from lake.cleaning.columns import LINEAGE_TYPES
from lake.cleaning.report import HourReport
from lake.firehose import partition_key
from lake.hour_totals import HourTotals, hour_totals, listing_mark
from lake.iceberg.catalog import LakeTables
from lake.landing_scan import hour_listing
from lake.pii import PIIKey
from lake.settings import Settings
from lake.storage import Storage
from lake.streams import StreamSpec

if TYPE_CHECKING:  # the cleaning package is imported by the runs that clean
    from lake.cleaning.parallel import ChunkRunner, Clean

RECONCILE_CHECK = "records_reconcile"
QUARANTINE_CHECK = "quarantine_ratio"
FILES_SHOWN = 50
HOURS_MESSAGE = "hour_metadata"  # a Pipes worker's custom message of per-hour metadata


class RunLog(Protocol):
    """What a run logs to: Dagster's context.log, or a Pipes worker's."""

    def info(self, message: str) -> None: ...

    def warning(self, message: str) -> None: ...


@dataclass(frozen=True)
class RunOptions:
    """A run's choices (the asset's config, and whether a sensor's run lists from a mark)."""

    full_refresh: bool = False
    up_to_key: str | None = None
    from_mark: bool = False  # list each hour from the previous run's mark on


@dataclass(frozen=True)
class CheckOutcome:
    """An asset check's result, in the wire form of `report_asset_check`."""

    name: str
    passed: bool
    metadata: dict[str, Any]
    severity: str = "ERROR"


@dataclass
class CleanRunResult:
    """What a run did: per-hour reports and their metadata (by partition key), the run's
    total, its materialization metadata and its checks."""

    reports: dict[datetime, HourReport]
    total: HourReport
    hour_metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    checks: list[CheckOutcome] = field(default_factory=list)


def json_value(value: Any) -> dict[str, Any]:
    return {"type": "json", "raw_value": value}


def clean_run(
    settings: Settings,
    spec: StreamSpec,
    database: str,
    storages: tuple[Storage, Storage],
    pii_key: PIIKey,
    hours: list[datetime],
    options: RunOptions,
    log: RunLog,
    chunk_runner: Callable[[dict[str, Any] | None], ChunkRunner] | None = None,
) -> CleanRunResult:
    """Clean `hours` of `spec`'s stream from the landing zone into the lake
    (`storages` = (landing, lake)) and report it. With CLEAN_WORKERS > 1 the hours are
    cleaned in chunks side by side (lake.cleaning.parallel): on threads, or on the
    workers `chunk_runner` gives for the run's catalog table (Pipes)."""
    # imported by the run that cleans, not by every process loading the code location
    # (pyiceberg, DuckDB and the cleaning package: about a second)
    from lake.cleaning.commit import RunCommit
    from lake.cleaning.hour import CleaningSession
    from lake.cleaning.parallel import clean_in_parallel
    from lake.retype import retype_stream
    from lake.warehouse import Warehouse

    landing, lake = storages
    table = Catalog(lake, database).get_table(spec.name)
    if table is None:
        log.warning(
            f"no catalog table {database}.{spec.name} yet: typing from this run's records; "
            f"materialize schema/{spec.name} to record the schema"
        )
    bounded = options.from_mark and not options.full_refresh
    tables = LakeTables(settings)
    run_commit = RunCommit(tables, spec, lake)  # one Iceberg commit for every hour of the run
    marks = {
        h: listing_mark(lake, spec.name, h, run_commit.deltas) if bounded else None for h in hours
    }
    landed = {h: hour_listing(landing, spec.name, h, mark) for h, mark in marks.items()}
    up_to = options.up_to_key
    batches = {
        h: [o for o in objs if up_to is None or o.key <= up_to] for h, objs in landed.items()
    }
    clean = cleaner(settings, spec, table, storages, pii_key, options, tables)
    workers = settings.clean_workers if parallel_run(settings, table, batches) else 1
    if workers > 1 or chunk_runner is not None:  # Pipes workers: one chunk if not split
        runner = chunk_runner(table) if chunk_runner is not None else None
        reports = clean_in_parallel(batches, workers, run_commit, lake, settings, clean, runner)
    else:
        with CleaningSession(settings, pii_key) as session:  # one DuckDB connection for the run
            reports = clean(batches=batches, run_commit=run_commit, session=session)
    total = HourReport()
    for batch in reports.values():
        total.absorb(batch)
    commits = run_commit.commit()
    # files cleaned under an older catalog version get the current column types
    retyped = retype_stream(spec, table, landing, lake, pii_key, settings, tables)
    if retyped.files_retyped:
        log.info(
            f"retyped {len(retyped.files_retyped)} cleaned files of {spec.name} to the "
            f"catalog's types ({len(retyped.objects_recleaned)} objects re-cleaned from "
            f"landing, {len(retyped.objects_cast)} cast)"
        )
    # after both commits: the warehouse's views list the files they left
    exposed = Warehouse(
        settings.warehouse_path, settings.warehouse_lock_wait_seconds
    ).expose_stream(lake, tables, spec.name)
    if exposed.pending:
        log.warning(f"warehouse views of {spec.name} pending: {exposed.pending}")
    result = CleanRunResult(reports, total)
    for hour, batch in reports.items():  # after retype: the types it left
        complete = marks[hour] is None
        totals = hour_totals(lake, spec.name, hour, landed[hour], complete, run_commit.deltas)
        result.hour_metadata[partition_key(hour)] = hour_metadata(lake, totals, batch)
    result.metadata = {
        # the name mart SQL reads it by; Hive-style dt= folders under the URI
        "dagster/table_name": f"cleaned.{spec.name}",
        "dagster/uri": f"{lake.uri}/{layout.layer_folder(layout.CLEANED, spec.name)}",
        "catalog_version": int(table["VersionId"]) if table else 0,
        "pii_key_source": pii_key.source,
        **retyped.as_metadata(),
        "warehouse_views_ready": exposed.view_ready,
        "warehouse_pending": exposed.pending or "",
        **{
            k: v
            for layer, commit in commits.items()
            for k, v in commit.as_metadata(f"iceberg_{layer}_").items()
        },
    }
    result.checks = [reconcile_check(total), quarantine_check(total, spec.max_quarantine_ratio)]
    return result


def cleaner(
    settings: Settings,
    spec: StreamSpec,
    table: dict[str, Any] | None,
    storages: tuple[Storage, Storage],
    pii_key: PIIKey,
    options: RunOptions,
    tables: LakeTables,
) -> Clean:
    """clean_hours with a run's arguments bound: all but the batches, commit, session and
    peers (a chunk on a Pipes worker binds the same)."""
    from lake.cleaning.hour import clean_hours

    landing, lake = storages
    return partial(  # the hours' objects share passes: a backfill pays per pass
        clean_hours,
        spec,
        table,
        landing,
        lake,
        full_refresh=options.full_refresh,
        pii_key=pii_key,
        settings=settings,
        tables=tables,
    )


def parallel_run(
    settings: Settings, table: dict[str, Any] | None, batches: dict[datetime, list[Any]]
) -> bool:
    """Whether the run's hours are cleaned in parallel chunks (lake.cleaning.parallel):
    CLEAN_WORKERS > 1, more than one hour with objects, and a catalog table (without one,
    each chunk would type from a sample of its own objects, not the run's)."""
    return settings.clean_workers > 1 and table is not None and sum(map(bool, batches.values())) > 1


def hour_metadata(lake: Storage, totals: HourTotals, batch: HourReport) -> dict[str, Any]:
    """One hour's materialization: the hour's running totals (every object of the hour
    processed so far, by any run) and, prefixed `batch_`, what this run did in it.

    A run with nothing new for the hour (a re-run, a sensor batch another run cleaned
    first) still materializes it: its totals are the hour's, its batch counts are zero and
    `event_dates` is empty, so neither plots nor the marts sensor see anything new. Dagster
    records one materialization for every hour of a range run's single output, so skipping
    the no-op hours of a backfill is not possible; skipping a whole no-op run would also
    skip the steps after it in the run and leave the backfill's partitions unmaterialized.
    """
    columns = [
        *({"name": name, "type": kind} for name, kind in totals.column_types.items()),
        *(
            {"name": name, "type": kind, "description": "lineage"}
            for name, kind in LINEAGE_TYPES.items()
        ),
        {"name": "dt", "type": "DATE", "description": "event date: the Hive folder dt=YYYY-MM-DD"},
    ]
    batch_counts = {k: v for k, v in batch.as_metadata().items() if k != "event_dates"}
    return {
        # Dagster's table keys (TableMetadataSet is not exported by dagster 1.13)
        "dagster/column_schema": {"type": "table_schema", "raw_value": {"columns": columns}},
        "dagster/row_count": totals.records_cleaned,
        "dagster/partition_row_count": totals.records_cleaned,
        "objects": totals.objects,
        "objects_pending": totals.objects_pending,
        "bytes_in": totals.bytes_in,
        "records_in": totals.records_in,
        "records_cleaned": totals.records_cleaned,
        "records_quarantined": totals.records_quarantined,
        "duplicates_dropped": totals.duplicates_dropped,
        "quarantine_ratio": round(totals.quarantine_ratio, 6),
        "files": json_value([lake.uri_of(f) for f in totals.files[:FILES_SHOWN]]),
        "files_not_shown": max(0, totals.files_count - FILES_SHOWN),
        # the event dates this run wrote: the marts sensor rebuilds those days
        "event_dates": json_value(sorted(batch.event_dates)),
        **{f"batch_{k}": v for k, v in batch_counts.items()},
        "batch_files_written": len(batch.files_written),
        "batch_columns_not_in_catalog": json_value(
            {k: v for k, v in batch.columns_not_in_catalog.items() if v}
        ),
    }


def reconcile_check(total: HourReport) -> CheckOutcome:
    accounted = total.records_cleaned + total.records_quarantined + total.duplicates_dropped
    return CheckOutcome(
        RECONCILE_CHECK,
        passed=accounted == total.records_in and not total.unbalanced_objects,
        metadata={
            "records_in": total.records_in,
            "accounted": accounted,
            "unbalanced_objects": json_value(total.unbalanced_objects),
        },
    )


def quarantine_check(total: HourReport, limit: float) -> CheckOutcome:
    return CheckOutcome(
        QUARANTINE_CHECK,
        passed=total.quarantine_ratio <= limit,
        metadata={
            "records_quarantined": total.records_quarantined,
            "records_in": total.records_in,
            "ratio": round(total.quarantine_ratio, 6),
            "limit": limit,
        },
    )
