"""Table maintenance assets: compaction (daily partitions) and expiry per table.

`compaction/<layer>/<stream>` rewrites a day's small files (lake.iceberg.compaction) of
the cleaned and quarantine tables (a mart's day is one file: nothing to compact);
`expiry/<layer>/<table>` expires old snapshots and deletes the files no snapshot needs
(lake.iceberg.expiry); `compaction/dedup_keys/<stream>` merges an event date's hour key
files into its compacted file (lake.cleaning.key_files; runs do it too, at their end,
once four hour files of a date are outside it). All are in the pool of the assets writing their table: a stream's
pool for its cleaned and quarantine tables, the warehouse pool for the marts. So
maintenance never runs while the table's own writer runs (under Dagster): no commit of
its has to be retried against a cleaning run, and expiry never judges a file a re-clean
is rewriting under the same name. Commits from outside Dagster still retry
(lake.iceberg.commit.with_retries), and compaction leaves a day a concurrent commit changed.
"""

from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    ResourceParam,
    asset,
)

from assets.hourly import stream_pool
from assets.marts import WAREHOUSE_POOL
from lake.cleaning import key_files, run_keys
from lake.iceberg.catalog import CLEANED, MARTS, QUARANTINE, LakeTables
from lake.marts import MartSpec
from lake.settings import Settings
from orchestration.resources import LakeResource

if TYPE_CHECKING:  # pyiceberg: imported by the maintenance runs, not by loading the code location
    from lake.iceberg.compaction import DayCompaction

GROUP = "maintenance"
COMPACTION, EXPIRY = "compaction", "expiry"
DEDUP_KEYS = "dedup_keys"


@dataclass(frozen=True)
class MaintainedTable:
    """A table the pipeline writes, the asset writing it, and that asset's pool."""

    layer: str
    name: str
    writer: AssetKey
    pool: str
    compacts: bool = True  # many files a day (one per landed object)


def maintained_tables(streams: list[str], marts: list[MartSpec]) -> list[MaintainedTable]:
    """The cleaned and quarantine table of every stream, the table of every mart (a
    mart's build writes one file a day: it is not compacted)."""
    tables = [
        MaintainedTable(layer, stream, AssetKey([CLEANED, stream]), stream_pool(stream))
        for stream in streams
        for layer in (CLEANED, QUARANTINE)
    ]
    tables += [
        MaintainedTable(MARTS, m.name, AssetKey([MARTS, m.name]), WAREHOUSE_POOL, compacts=False)
        for m in marts
    ]
    return tables


def build_compaction_asset(
    table: MaintainedTable, partitions: DailyPartitionsDefinition
) -> AssetsDefinition:
    @asset(
        key=AssetKey([COMPACTION, table.layer, table.name]),
        deps=[table.writer],
        partitions_def=partitions,
        backfill_policy=BackfillPolicy.single_run(),  # the schedule's days: one run
        group_name=GROUP,
        pool=table.pool,
        kinds={"iceberg"},
        description=(
            f"Compaction of {table.layer}.{table.name}: a day's small files rewritten into "
            "files of about COMPACTION_TARGET_BYTES, in one snapshot"
        ),
    )
    def _compaction(
        context: AssetExecutionContext, settings: ResourceParam[Settings]
    ) -> MaterializeResult:
        from lake.iceberg.compaction import compact_day

        tables = LakeTables(settings)
        days: list[DayCompaction] = []
        for key in context.partition_keys:
            done = compact_day(
                tables,
                table.layer,
                table.name,
                date.fromisoformat(key),
                settings.compaction_target_bytes,
                settings.compaction_min_files,
            )
            context.add_asset_metadata(done.as_metadata(), partition_key=key)
            days.append(done)
        return MaterializeResult(
            metadata={
                "days_compacted": MetadataValue.json([str(d.day) for d in days if not d.skipped]),
                "files_before": sum(d.files_before for d in days),
                "files_after": sum(d.files_after for d in days),
                "bytes_before": sum(d.bytes_before for d in days),
                "bytes_after": sum(d.bytes_after for d in days),
            }
        )

    return _compaction


def build_key_compaction_asset(
    table: MaintainedTable, partitions: DailyPartitionsDefinition
) -> AssetsDefinition:
    """The dedup keys of the stream `table` is the cleaned table of, per event date."""

    @asset(
        key=AssetKey([COMPACTION, DEDUP_KEYS, table.name]),
        deps=[table.writer],
        partitions_def=partitions,
        backfill_policy=BackfillPolicy.single_run(),
        group_name=GROUP,
        pool=table.pool,
        description=(
            f"Compaction of {table.name}'s dedup keys: an event date's run key files folded "
            "into their hour files, and those merged into its compacted file, so a "
            "micro-batch's probe opens one file a date"
        ),
    )
    def _key_compaction(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
        storage, compacted = lake.lake(), []
        for key in context.partition_keys:
            day = date.fromisoformat(key)
            folded = run_keys.fold_day(storage, table.name, day)  # the runs' own files first
            done = key_files.compact_day(storage, table.name, day)
            context.add_asset_metadata(
                {"compacted": done, "hours_folded": len(folded)}, partition_key=key
            )
            compacted += [key] if done else []
        return MaterializeResult(metadata={"days_compacted": MetadataValue.json(compacted)})

    return _key_compaction


def build_expiry_asset(table: MaintainedTable, upstream: AssetKey) -> AssetsDefinition:
    @asset(
        key=AssetKey([EXPIRY, table.layer, table.name]),
        deps=[upstream],
        group_name=GROUP,
        pool=table.pool,
        kinds={"iceberg"},
        description=(
            f"Snapshot expiry of {table.layer}.{table.name}: snapshots older than "
            "SNAPSHOT_RETENTION_HOURS, then the files no remaining snapshot references"
        ),
    )
    def _expiry(lake: LakeResource, settings: ResourceParam[Settings]) -> MaterializeResult:
        from lake.iceberg.expiry import expire_table

        retention = timedelta(hours=settings.snapshot_retention_hours)
        done = expire_table(LakeTables(settings), lake.lake(), table.layer, table.name, retention)
        return MaterializeResult(metadata=done.as_metadata())

    return _expiry


def build_maintenance_assets(
    tables: list[MaintainedTable], partitions: DailyPartitionsDefinition
) -> list[AssetsDefinition]:
    """Per table: its compaction (if it compacts) and its expiry, after the compaction;
    per cleaned table, its stream's dedup key compaction."""
    built = []
    for table in tables:
        if table.layer == CLEANED:
            built.append(build_key_compaction_asset(table, partitions))
        upstream = table.writer
        if table.compacts:
            compaction = build_compaction_asset(table, partitions)
            built.append(compaction)
            upstream = compaction.key
        built.append(build_expiry_asset(table, upstream))
    return built
