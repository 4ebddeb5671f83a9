"""Sensors: new landing objects start ingest runs; new cleaned data starts mart runs."""

import hashlib
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from dagster._core.storage.tags import PARTITION_NAME_TAG

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

from assets.hourly import new_objects_tag
from lake import s3_events
from lake.day_completeness import days_completed
from lake.firehose import parse_key, partition_key
from lake.iceberg.catalog import LakeTables
from lake.landing_scan import ScanCursor, scan_new_objects
from lake.settings import Settings
from lake.storage import S3Storage, open_storage
from orchestration.aws_resources import LandingEventsResource
from orchestration.resources import LakeResource

# The builders take the settings the definitions are built with: intervals and default
# states are Dagster's at load time, and the limits are read by the same code location.

# Runs that have not left the queue yet: such a run reads the lake only after it starts.
WAITING = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.QUEUED]
# Runs out of the queue: their process may still be starting (importing the code location,
# seconds) or waiting for its stream's pool, before any step has read the lake.
LAUNCHED = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
# A launched run is joined only this long after its last status change: one stuck before
# its first step (left STARTING with no process, until run monitoring fails it after
# dagster.yaml's start_timeout_seconds) must not keep taking its hour's batches; past
# this, the next batch gets a run of its own.
JOIN_LAUNCHED_WITHIN_S = 120.0


def tick_interval(seconds: int) -> int:
    """The `minimum_interval_seconds` that makes a sensor tick every `seconds`.

    Dagster's sensor daemon looks at its sensors every 5 s (dagster/_daemon/sensor.py
    MIN_INTERVAL_LOOP_TIME) and skips one whose last tick started less than
    `minimum_interval_seconds` ago. A tick starts a moment after the look that took it (on
    the daemon's thread pool), so the look `seconds` later finds a hair less than `seconds`:
    with `seconds` itself, every other look was skipped and a 5 s sensor ticked every 10 s
    (bench/README.md, "fresh3"). A second less lets that look take it."""
    return max(1, seconds - 1)


def waiting_run_id(
    instance: DagsterInstance, tags: dict[str, str], job: str | None = None
) -> str | None:
    """A run with these tags (and of this job) that has not begun a step yet, if any.

    A new batch joins it instead of adding a run: every step of the run reads (lists,
    cleans, builds from) the lake as it is when the step starts, which is after this tick
    saw the batch. A run still queued is taken first; then one launched (within
    JOIN_LAUNCHED_WITHIN_S) whose first step has not started (its STEP_START event is
    stored before the step's body runs). A run whose steps began may have read the lake
    already: it is not joined."""
    records = instance.get_run_records(
        RunsFilter(job_name=job, statuses=WAITING, tags=tags), limit=1
    )
    if records:
        return records[0].dagster_run.run_id
    recent = datetime.now(UTC) - timedelta(seconds=JOIN_LAUNCHED_WITHIN_S)
    launched = instance.get_run_records(
        RunsFilter(job_name=job, statuses=LAUNCHED, tags=tags, updated_after=recent)
    )
    for record in launched:
        if not _has_begun_a_step(instance, record.dagster_run.run_id):
            return record.dagster_run.run_id
    return None


def _has_begun_a_step(instance: DagsterInstance, run_id: str) -> bool:
    steps = instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_START, limit=1)
    return bool(steps.records)


def batch_run_key(stream: str, partition: str, objects: list[tuple[str, str]]) -> str:
    """Unique per batch of (key, version) objects, so a later batch for the same hour, or
    an object overwritten under its key, is never deduplicated away."""
    lines = sorted(f"{key}\t{version}" for key, version in objects)
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
    return f"{stream}:{partition}:{digest}"


def build_landing_sensor(
    stream: str, job: "UnresolvedAssetJobDefinition", settings: Settings
) -> SensorDefinition:
    @sensor(
        name=f"{stream}_landing_sensor",
        job=job,
        minimum_interval_seconds=tick_interval(settings.sensor_interval_seconds),
        # with S3 events on SQS configured, the queue finds new objects: listing is off
        default_status=DefaultSensorStatus.STOPPED
        if settings.landing_sqs_queue_url
        else DefaultSensorStatus.RUNNING,
        description=f"Starts {job.name} for the arrival hours of new objects under {stream}/",
    )
    def _landing_sensor(context: SensorEvaluationContext, lake: LakeResource):
        scan = scan_new_objects(
            lake.landing(),
            stream,
            ScanCursor.from_json(context.cursor),
            # the rest waits for the next tick: a run's batch and a tick's time stay bounded
            max_new=settings.max_objects_per_tick,
            late_hours=settings.landing_late_hours,
            max_recent=settings.landing_recent_keys,
        )
        if scan.unparsable:
            context.log.warning(
                f"{len(scan.unparsable)} keys under {stream}/ are not in Firehose's layout and "
                f"belong to no hour, e.g. {scan.unparsable[:3]}"
            )
        by_hour = {hour: [(i.key, i.etag) for i in infos] for hour, infos in scan.by_hour().items()}
        requests = hour_run_requests(context, settings, stream, by_hour, "landing")
        idle = f"no new objects ({scan.listed} keys listed)"
        if by_hour:
            idle = f"{len(scan.new)} new objects: their hours' runs are still queued or starting (see log)"
        return tick_result(requests, scan.cursor.to_json(), idle)

    return _landing_sensor


def tick_result(requests: list[RunRequest], cursor: str, idle: str) -> SensorResult:
    """The tick's run requests and cursor, or a skip saying why there are none."""
    if not requests:
        return SensorResult(skip_reason=SkipReason(idle), cursor=cursor)
    return SensorResult(run_requests=requests, cursor=cursor)


def hour_run_requests(
    context: SensorEvaluationContext,
    settings: Settings,
    stream: str,
    by_hour: dict[datetime, list[tuple[str, str]]],
    source: str,
    job_name: str | None = None,
) -> list[RunRequest]:
    """One run per arrival hour, keyed by its batch of object keys (a later batch of the
    same hour is a new run, never deduplicated away), unless a run of the stream and hour
    has not begun a step (queued, or launched and still starting: `waiting_run_id`): the
    batch then joins it. A run's steps take every unprocessed object of its hour (the
    batch, the batches that joined it before its steps began, anything an earlier run
    left), so the queue holds at most one run per stream and hour, a starting run takes
    the batches that land while its process starts, and a batch is never lost to a run
    that was created before it landed."""
    start = settings.pipeline_start_date
    first_hour = _first_hour(settings)
    latest_hour = datetime.now(UTC) + timedelta(hours=1)
    requests = []
    for hour, objects in by_hour.items():
        keys = [key for key, _ in objects]
        if not first_hour <= hour <= latest_hour:
            context.log.warning(
                f"{len(keys)} objects in hour {hour:%Y-%m-%d %H}:00 are outside the "
                f"partitions ({start} .. now); set PIPELINE_START_DATE to include them"
            )
            continue
        pk = partition_key(hour)
        queued = waiting_run_id(context.instance, {"stream": stream, PARTITION_NAME_TAG: pk})
        if queued is not None:
            context.log.info(
                f"{len(keys)} new objects of {stream} {pk} join run {queued} (not begun)"
            )
            continue
        requests.append(
            RunRequest(
                run_key=f"{source}:" + batch_run_key(stream, pk, objects),
                partition_key=pk,
                job_name=job_name,
                tags={"stream": stream, new_objects_tag(source): str(len(keys))},
            )
        )
    return requests


def _first_hour(settings: Settings) -> datetime:
    """The first hourly partition (PIPELINE_START_DATE, 00:00 UTC)."""
    return datetime.fromisoformat(settings.pipeline_start_date).replace(tzinfo=UTC)


# The S3 "client" of a storage opened only to name keys (see landing_events_sensor).
NO_S3_CLIENT = object()


def build_landing_events_sensor(
    jobs: dict[str, "UnresolvedAssetJobDefinition"], settings: Settings
) -> SensorDefinition:
    """SQS mode: S3 ObjectCreated events from LANDING_SQS_QUEUE_URL start the ingest runs.
    A tick deletes the messages of the tick its cursor names (whose run requests are
    committed by now) and reads new ones with long polling; see lake.s3_events."""

    @sensor(
        name="landing_events_sensor",
        jobs=list(jobs.values()),
        minimum_interval_seconds=tick_interval(settings.sensor_interval_seconds),
        default_status=DefaultSensorStatus.RUNNING
        if settings.landing_sqs_queue_url
        else DefaultSensorStatus.STOPPED,
        description="Starts ingest runs from S3 event notifications on LANDING_SQS_QUEUE_URL",
    )
    def _events(
        context: SensorEvaluationContext, lake: LakeResource, landing_events: LandingEventsResource
    ):
        queue = landing_events.queue_url
        if not queue:
            return SkipReason("LANDING_SQS_QUEUE_URL is not set: the landing sensors list")
        # only key_of is used: no S3 client (boto3 builds one from its S3 model, 0.5-1 s
        # a tick here), and NO_S3_CLIENT fails loudly if a later edit calls S3 with it
        landing = open_storage(lake.landing_uri, s3_client=NO_S3_CLIENT)
        if not isinstance(landing, S3Storage):
            return SkipReason("S3 events need an s3:// LANDING_URI")
        sqs = landing_events.client()
        # the receipt handles wait in Dagster's key-value store: the cursor only names them
        kept = f"landing_events_sensor/receipts/{queue}"
        kv = context.instance.run_storage
        committed = s3_events.committed_receipts(
            kv.get_cursor_values({kept}).get(kept), json.loads(context.cursor or "{}").get("tick")
        )
        refused = s3_events.delete(sqs, queue, committed)
        if refused:
            context.log.warning(
                f"{len(refused)} messages expired before deletion; they will repeat"
            )
        got = s3_events.receive(
            sqs, queue, settings.max_objects_per_tick, landing_events.wait_seconds
        )
        by_stream: dict[str, dict[datetime, list[tuple[str, str]]]] = defaultdict(
            lambda: defaultdict(list)
        )
        for bucket, full_key in got.keys:
            key = landing.key_of(bucket, full_key)
            parsed = parse_key(key) if key else None
            if parsed is None or parsed.stream not in jobs:
                context.log.warning(f"S3 event for s3://{bucket}/{full_key}: not a landing object")
                continue
            version = got.versions.get((bucket, full_key), "")
            by_stream[parsed.stream][parsed.arrival_hour].append((key, version))
        requests = [
            request
            for stream, by_hour in sorted(by_stream.items())
            for request in hour_run_requests(
                context,
                settings,
                stream,
                dict(sorted(by_hour.items())),
                "events",
                jobs[stream].name,
            )
        ]
        tick, record = s3_events.pending_record(got.receipts)
        kv.set_cursor_values({kept: record})
        return tick_result(
            requests,
            json.dumps({"tick": tick}),
            f"no new objects ({len(got.receipts)} messages read)",
        )

    return _events


def build_reconcile_sensor(
    stream: str, job: "UnresolvedAssetJobDefinition", settings: Settings
) -> SensorDefinition:
    """Now and then, compare whole hour folders of the last days with the cleaning ledger
    and run the hours that hold objects no run processed (a few hours a tick)."""

    @sensor(
        name=f"{stream}_reconciliation",
        job=job,
        minimum_interval_seconds=tick_interval(settings.reconcile_interval_seconds),
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Finds {stream} objects no cleaning run processed, over "
        f"{settings.reconcile_days} days",
    )
    def _reconcile(context: SensorEvaluationContext, lake: LakeResource):
        # reads the cleaning ledger and the Iceberg table (pyiceberg): imported by the code
        # server's first tick, not by the run processes that load this module
        from lake.reconcile import ReconcileCursor, reconcile_some_hours

        now = datetime.now(UTC)
        # from the current hour: the landing scan skips keys named below its floor, in any
        # hour, so no hour may be left to it alone
        newest = now.replace(minute=0, second=0, microsecond=0)
        oldest = max(newest - timedelta(days=settings.reconcile_days), _first_hour(settings))
        # younger objects are the landing sensor's: their runs may still be queued
        grace = timedelta(minutes=settings.reconcile_grace_minutes)
        checked = reconcile_some_hours(
            lake.landing(),
            lake.lake(),
            stream,
            ReconcileCursor.from_json(context.cursor),
            newest,
            oldest,
            landed_before=now - grace,
            tables=LakeTables(settings),
        )
        for hour, keys in checked.uncatalogued.items():
            context.log.warning(
                f"{len(keys)} processed objects of {stream} in hour {hour:%Y-%m-%d %H}:00 "
                f"have cleaned files the cleaned table does not hold: {keys[:10]}"
            )
        by_hour = {h: [(i.key, i.etag) for i in infos] for h, infos in checked.unprocessed.items()}
        requests = hour_run_requests(context, settings, stream, by_hour, "reconcile")
        return tick_result(requests, checked.cursor.to_json(), "every object checked is processed")

    return _reconcile


def build_marts_sensor(
    cleaned_keys: list[AssetKey],
    job: "UnresolvedAssetJobDefinition",
    lateness_hours: dict[str, int],
    settings: Settings,
) -> SensorDefinition:
    """Rebuild the days that new cleaned data touched (late records re-trigger older days),
    and the days its arrival hours make complete (lake.day_completeness): their day-level
    flags are judged then."""

    @sensor(
        name="marts_on_new_cleaned_data",
        job=job,
        minimum_interval_seconds=tick_interval(settings.marts_sensor_interval_seconds),
        default_status=DefaultSensorStatus.RUNNING,
        description="Starts daily_marts for every event date that new cleaned data touched, "
        "and for every day its arrival makes complete",
    )
    def _marts_sensor(context: SensorEvaluationContext):
        cursor = json.loads(context.cursor) if context.cursor else {}
        days: set[str] = set()
        arrived = cursor.setdefault("arrived_through", {})  # stream -> newest arrival hour
        for key in cleaned_keys:
            newest = None
            result = context.instance.fetch_materializations(
                AssetRecordsFilter(
                    asset_key=key, after_storage_id=cursor.get(key.to_user_string())
                ),
                limit=1000,
                ascending=True,
            )
            for record in result.records:
                dates = record.asset_materialization.metadata.get("event_dates")
                days.update(dates.value if dates is not None else [])
                cursor[key.to_user_string()] = record.storage_id
                if (partition := record.asset_materialization.partition) is not None:
                    hour = datetime.strptime(partition, "%Y-%m-%d-%H:%M")  # arrival hour
                    newest = max(newest or hour, hour)
            stream = key.path[-1]
            if newest is not None:
                newest = newest.replace(tzinfo=UTC)
                seen = arrived.get(stream)
                # without a past watermark, only the days this very hour completes
                after = datetime.fromisoformat(seen) if seen else newest - timedelta(hours=1)
                if newest > after:
                    completed = days_completed(after, newest, lateness_hours[stream])
                    days.update(d.isoformat() for d in completed)
                    arrived[stream] = newest.isoformat()
        today = datetime.now(UTC).date()
        start = settings.pipeline_start_date
        valid = sorted(d for d in days if start <= d <= today.isoformat())
        # a day's run not begun yet builds from the tables as they are when its steps start
        requests = [
            RunRequest(partition_key=day, tags={"marts/trigger": "cleaned"})
            for day in valid
            if waiting_run_id(context.instance, {PARTITION_NAME_TAG: day}, job.name) is None
        ]
        if not requests:
            idle = f"runs of {valid} still queued or starting" if valid else "no new cleaned data"
            return SensorResult(skip_reason=SkipReason(idle), cursor=json.dumps(cursor))
        return SensorResult(run_requests=requests, cursor=json.dumps(cursor))

    return _marts_sensor
