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

from lake.firehose import hours_between, partition_key
from lake.streams import StreamSpec

# A step that raised (S3 503s past boto3's own retries, a lost connection) runs again in
# the same run, after ~10 s then ~20 s. Re-running a step is safe: cleaning skips objects
# in the ledger and rewrites the same files; a crashed run worker is dagster.yaml's
# run_retries' job.
ASSET_RETRY_POLICY = RetryPolicy(
    max_retries=2, delay=10, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
)


def hourly_asset_args(
    layer: str,
    spec: StreamSpec,
    partitions: HourlyPartitionsDefinition,
    upstream: str | None = None,
) -> dict[str, Any]:
    """`@asset` arguments for `<layer>/<stream>`, partitioned by arrival hour.

    A backfill of many hours is one run (BackfillPolicy.single_run) that loops over them.
    The stream's pool (limit 1 in dagster.yaml) keeps two runs of one stream from working
    at once, however they were launched (sensor, UI, backfill, CLI). The code version is
    the hash of the stream's streams.yaml entry, so the UI marks partitions materialized
    under an earlier entry as stale.
    """
    return {
        "key": AssetKey([layer, spec.name]),
        "deps": [AssetKey([upstream, spec.name])] if upstream else [],
        "partitions_def": partitions,
        "backfill_policy": BackfillPolicy.single_run(),
        "group_name": layer,
        "retry_policy": ASSET_RETRY_POLICY,
        "pool": stream_pool(spec.name),
        "code_version": spec.code_version,
        "owners": list(spec.operations.owners),
        "tags": {"pii": "true"} if spec.holds_pii else {},
    }


def stream_pool(stream: str) -> str:
    """The concurrency pool of a stream's landing, schema and cleaned assets."""
    return f"stream_{stream}"


def new_objects_tag(source: str) -> str:
    """The tag of the runs a sensor of `source` starts ("landing" lists S3, "events" reads
    S3 event notifications): its value is the count of new objects."""
    return f"{source}/new_objects"


def lists_from_mark(context: AssetExecutionContext) -> bool:
    """Whether the run lists its hours from the previous run's mark on
    (lake.landing_scan.hour_listing): the runs the S3-listing landing sensor started do,
    since that sensor itself finds nothing below its own look-back. An event names its
    exact key, which may sort below the mark (a late or overwritten object), so the runs
    the events sensor starts list their hours whole."""
    return new_objects_tag("landing") in context.run.tags


def hours_of(context: AssetExecutionContext) -> list[datetime]:
    window = context.partition_time_window
    return hours_between(window.start, window.end)


def add_hour_metadata(
    context: AssetExecutionContext, hour: datetime, metadata: dict[str, Any]
) -> None:
    """Metadata of one hour of the run: in a range run (single-run backfill) each hour's
    materialization carries its own, on top of what the asset returns for the whole run."""
    context.add_asset_metadata(metadata, partition_key=partition_key(hour))
