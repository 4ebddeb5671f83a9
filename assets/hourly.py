"""What the hourly (arrival-hour) assets share: partitions, single-run backfills, hours of a run."""

from datetime import datetime
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    Backoff,
    HourlyPartitionsDefinition,
    Jitter,
    RetryPolicy,
)

from lake.firehose import hours_between

# A step that raised (S3 503s past boto3's own retries, a lost connection) runs again in
# the same run, after ~10 s then ~20 s. Re-running a step is safe: cleaning skips objects
# in the ledger and rewrites the same files; a crashed run worker is dagster.yaml's
# run_retries' job.
ASSET_RETRY_POLICY = RetryPolicy(
    max_retries=2, delay=10, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
)


def hourly_asset_args(
    layer: str, stream: str, partitions: HourlyPartitionsDefinition, upstream: str | None = None
) -> dict[str, Any]:
    """`@asset` arguments for `<layer>/<stream>`, partitioned by arrival hour.

    A backfill of many hours is one run (BackfillPolicy.single_run) that loops over them.
    The stream's pool (limit 1 in dagster.yaml) keeps two runs of one stream from working
    at once, however they were launched (sensor, UI, backfill, CLI).
    """
    return {
        "key": AssetKey([layer, stream]),
        "deps": [AssetKey([upstream, stream])] if upstream else [],
        "partitions_def": partitions,
        "backfill_policy": BackfillPolicy.single_run(),
        "group_name": layer,
        "retry_policy": ASSET_RETRY_POLICY,
        "pool": stream_pool(stream),
    }


def stream_pool(stream: str) -> str:
    """The concurrency pool of a stream's landing, schema and cleaned assets."""
    return f"stream_{stream}"


def hours_of(context: AssetExecutionContext) -> list[datetime]:
    window = context.partition_time_window
    return hours_between(window.start, window.end)
