"""Dagster's own cost per partition of a range run, without the pipeline's work.

    PYTHONPATH=.:bench .venv/bin/python bench/partition_events_bench.py --hours 96
    PYTHONPATH=.:bench .venv/bin/python bench/partition_events_bench.py --hours 96 --planned-subset
    PYTHONPATH=.:bench .venv/bin/python bench/partition_events_bench.py --hours 96 --metadata cleaned
    PYTHONPATH=.:bench .venv/bin/python bench/partition_events_bench.py --hours 96 --metadata none

Three chained hourly assets (like landing, schema and cleaned), a single-run backfill of
the first `--hours` hours in a fresh instance with the default SQLite storage, in-process
executor; each asset body only adds each hour's metadata (`--metadata small`: two values;
`cleaned`: about the size of the cleaned asset's, a 60-column TableSchema and 3 KB of
text; `none`: no per-hour metadata, one MaterializeResult for the run with the small
metadata, which Dagster copies onto every hour). `--planned-subset` sets Dagster's
DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS (one planned event per asset, not one per
hour). Prints seconds, events and ms an event.
"""

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import dagster as dg

warnings.filterwarnings("ignore", category=dg.BetaWarning)
PARTITIONS = dg.HourlyPartitionsDefinition(start_date="2026-11-01-00:00")


def hour_metadata(key: str, size: str) -> dict:
    metadata: dict = {"objects": 1, "hour": key}
    if size == "cleaned":
        columns = [dg.TableColumn(f"column_{i}", "VARCHAR", description="x") for i in range(60)]
        metadata["dagster/column_schema"] = dg.TableSchema(columns=columns)
        metadata["text"] = dg.MetadataValue.md("x" * 3000)
    return metadata


def hourly_asset(name: str, upstream: str | None, size: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        deps=[upstream] if upstream else [],
        partitions_def=PARTITIONS,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def _asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        if size == "none":
            return dg.MaterializeResult(metadata=hour_metadata(context.partition_keys[0], "small"))
        for key in context.partition_keys:
            context.add_asset_metadata(hour_metadata(key, size), partition_key=key)
        return dg.MaterializeResult()

    return _asset


def run(hours: int, size: str) -> None:
    assets = [
        hourly_asset("landing", None, size),
        hourly_asset("schema", "landing", size),
        hourly_asset("cleaned", "schema", size),
    ]
    job = dg.define_asset_job("range", assets, executor_def=dg.in_process_executor)
    defs = dg.Definitions(assets=assets, jobs=[job])
    keys = PARTITIONS.get_partition_keys()[:hours]
    tags = {
        "dagster/asset_partition_range_start": keys[0],
        "dagster/asset_partition_range_end": keys[-1],
    }
    with tempfile.TemporaryDirectory() as home:
        Path(home, "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        with dg.DagsterInstance.from_config(home) as instance:
            start = time.perf_counter()
            result = defs.resolve_job_def("range").execute_in_process(instance=instance, tags=tags)
            seconds = time.perf_counter() - start
            events = len(instance.all_logs(result.run_id))
    print(
        f"{hours} hours x 3 assets, metadata {size}, planned events "
        f"{'per asset' if os.environ.get('DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS') else 'per hour'}: "
        f"{seconds:.2f} s, {events} events, {seconds / events * 1000:.1f} ms an event, "
        f"load average {os.getloadavg()[0]:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=96)
    parser.add_argument("--metadata", choices=("small", "cleaned", "none"), default="small")
    parser.add_argument("--planned-subset", action="store_true")
    args = parser.parse_args()
    if args.planned_subset:
        os.environ["DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"] = "true"
    run(args.hours, args.metadata)


if __name__ == "__main__":
    main()
