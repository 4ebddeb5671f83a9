"""Bounded queues: a sensor adds no run for a stream's hour (or a mart day) whose run is still
queued; the queued run, when it runs, takes every batch that joined it. Real instance,
real folders, real cleaning."""

import json
from datetime import UTC, datetime

import pytest
from dagster import (
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    RunsFilter,
    build_sensor_context,
    materialize,
)
from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteRepositoryOrigin
from dagster._core.storage.tags import PARTITION_NAME_TAG
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from orchestration import sensors
from orchestration.definitions import defs, ingest_assets

REPO = defs.get_repository_def()
ORIGIN = RemoteRepositoryOrigin(
    InProcessCodeLocationOrigin(LoadableTargetOrigin(module_name="orchestration.definitions")),
    REPO.name,
)
STREAM = "robot_telemetry"
HOUR = datetime(2026, 11, 21, 8, tzinfo=UTC)
PARTITION = "2026-11-21-08:00"


def _tick(sensor_name: str, resources: dict, cursor: str | None, instance: DagsterInstance):
    with build_sensor_context(
        cursor=cursor, resources=resources, instance=instance, repository_def=REPO
    ) as context:
        return REPO.get_sensor_def(sensor_name).evaluate_tick(context)


def _enqueue(instance: DagsterInstance, job_name: str, request, status=DagsterRunStatus.QUEUED):
    """The run the sensor daemon creates for a request: the job's tags, the request's, and
    the partition's."""
    job = REPO.get_job(job_name)
    return instance.create_run_for_job(
        job,
        run_config=request.run_config,
        tags={**job.tags, **request.tags, PARTITION_NAME_TAG: request.partition_key},
        status=status,
        remote_job_origin=ORIGIN.get_job_origin(job_name),  # a queued run must have one
    )


def _begin_a_step(instance: DagsterInstance, run, step: str) -> None:
    """The STEP_START event a run's process stores before the step's body runs."""
    event = DagsterEvent(DagsterEventType.STEP_START.value, run.job_name, step_key=step)
    instance.report_dagster_event(event, run.run_id)


def _land(write, landing, minute: int, name: str) -> str:
    ts = f"2026-11-21T08:{minute:02d}:00Z"
    record = {"event_id": name, "ts": ts, "robot_id": "R01", "cow_id": "C1", "event_type": "x"}
    return write(landing, STREAM, HOUR.replace(minute=minute), [record], name)


def _waiting(instance: DagsterInstance, job_name: str) -> list:
    waiting = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED]
    return instance.get_run_records(RunsFilter(job_name=job_name, statuses=waiting))


def _first_run(local_lake, write, status, step: str | None = None) -> tuple[DagsterInstance, str]:
    """One object landed, the sensor's run for it in the instance with `status` (and, with
    `step`, that step begun)."""
    instance = DagsterInstance.ephemeral()
    _land(write, local_lake["landing"], 1, "a1")
    tick = _tick(f"{STREAM}_landing_sensor", local_lake["resources"], None, instance)
    (request,) = tick.run_requests
    run = _enqueue(instance, f"ingest_{STREAM}", request, status=status)
    if step is not None:
        _begin_a_step(instance, run, step)
    return instance, tick.cursor


def _clean_records_of_days(write, local_lake, instance, days: dict[int, str]) -> None:
    """An object landed at 08:<minute> for each item, holding one record of the day; cleaned."""
    for minute, day in days.items():
        record = {"event_id": f"e{minute}", "ts": f"{day}T08:{minute:02d}:00Z", "robot_id": "R1"}
        write(local_lake["landing"], STREAM, HOUR.replace(minute=minute), [record], f"m{minute}")
    assert materialize(
        ingest_assets(STREAM),
        partition_key=PARTITION,
        resources=local_lake["resources"],
        instance=instance,
    ).success


def test_batches_landing_while_a_run_is_queued_join_it_and_it_cleans_them_all(
    local_lake, write_concatenated
):
    landing, lake, resources = local_lake["landing"], local_lake["lake"], local_lake["resources"]
    instance = DagsterInstance.ephemeral()
    first = [
        _land(write_concatenated, landing, 1, "a1"),
        _land(write_concatenated, landing, 2, "a2"),
    ]

    tick = _tick(f"{STREAM}_landing_sensor", resources, None, instance)
    (request,) = tick.run_requests
    queued = _enqueue(instance, f"ingest_{STREAM}", request)

    later = [_land(write_concatenated, landing, 5, "b1")]
    tick = _tick(f"{STREAM}_landing_sensor", resources, tick.cursor, instance)
    assert tick.run_requests == []
    later.append(_land(write_concatenated, landing, 9, "c1"))
    tick = _tick(f"{STREAM}_landing_sensor", resources, tick.cursor, instance)
    assert tick.run_requests == []
    assert "still queued" in tick.skip_message
    assert [r.dagster_run.run_id for r in _waiting(instance, f"ingest_{STREAM}")] == [queued.run_id]

    # the queued run, run as it was queued (its partition and config), cleans all three batches
    assert materialize(
        ingest_assets(STREAM),
        partition_key=queued.tags[PARTITION_NAME_TAG],
        run_config=queued.run_config,
        resources=resources,
        instance=instance,
    ).success
    cleaned = {
        json.loads(lake.read(m.key))["source_key"] for m in lake.list(f"_state/cleaned/{STREAM}/")
    }
    assert cleaned == {*first, *later}


def test_a_run_whose_steps_began_takes_no_new_batch(local_lake, write_concatenated):
    """A run that began a step may have listed its hour already: the next batch gets a run."""
    landing, resources = local_lake["landing"], local_lake["resources"]
    step = f"landing__{STREAM}"
    instance, cursor = _first_run(local_lake, write_concatenated, DagsterRunStatus.STARTED, step)

    _land(write_concatenated, landing, 4, "b1")
    tick = _tick(f"{STREAM}_landing_sensor", resources, cursor, instance)
    (again,) = tick.run_requests
    assert again.partition_key == PARTITION
    assert again.tags["landing/new_objects"] == "1"


@pytest.mark.parametrize("status", [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED])
def test_a_launched_run_that_has_not_begun_a_step_takes_the_batch(
    local_lake, write_concatenated, status
):
    """While a run's process starts (imports the code location) or waits for its stream's
    pool, no step has read the lake: batches landing then join it, and it cleans them."""
    landing, lake, resources = local_lake["landing"], local_lake["lake"], local_lake["resources"]
    instance, cursor = _first_run(local_lake, write_concatenated, status)
    later = _land(write_concatenated, landing, 4, "b1")
    tick = _tick(f"{STREAM}_landing_sensor", resources, cursor, instance)
    assert tick.run_requests == []
    assert "still queued or starting" in tick.skip_message

    # the run, once its steps start, cleans the first object and the batch that joined it
    (run,) = instance.get_run_records(RunsFilter(statuses=[status]))
    assert materialize(
        ingest_assets(STREAM),
        partition_key=run.dagster_run.tags[PARTITION_NAME_TAG],
        run_config=run.dagster_run.run_config,
        resources=resources,
        instance=instance,
    ).success
    cleaned = {
        json.loads(lake.read(m.key))["source_key"] for m in lake.list(f"_state/cleaned/{STREAM}/")
    }
    assert len(cleaned) == 2 and later in cleaned


def test_a_launched_run_stuck_before_its_first_step_stops_taking_batches(
    local_lake, write_concatenated, monkeypatch
):
    """A run left STARTING with no process (only run monitoring would fail it): past the
    join window the next batch gets a run of its own."""
    monkeypatch.setattr(sensors, "JOIN_LAUNCHED_WITHIN_S", 0.0)
    instance, cursor = _first_run(local_lake, write_concatenated, DagsterRunStatus.STARTING)
    _land(write_concatenated, local_lake["landing"], 4, "b1")
    tick = _tick(f"{STREAM}_landing_sensor", local_lake["resources"], cursor, instance)
    (again,) = tick.run_requests
    assert again.tags["landing/new_objects"] == "1"


def test_a_queued_run_holds_only_its_own_stream_and_hour(local_lake, write_concatenated):
    landing, resources = local_lake["landing"], local_lake["resources"]
    instance, cursor = _first_run(local_lake, write_concatenated, DagsterRunStatus.QUEUED)

    write_concatenated(landing, STREAM, HOUR.replace(hour=9, minute=1), [{"event_id": "n"}], "n")
    write_concatenated(landing, "clickstream", HOUR.replace(minute=3), [{"event_id": "c"}], "c")
    (next_hour,) = _tick(f"{STREAM}_landing_sensor", resources, cursor, instance).run_requests
    assert next_hour.partition_key == "2026-11-21-09:00"
    (other,) = _tick("clickstream_landing_sensor", resources, None, instance).run_requests
    assert (other.partition_key, other.tags["stream"]) == (PARTITION, "clickstream")


def test_mart_days_with_a_queued_run_get_no_second_one(local_lake, write_concatenated):
    resources = local_lake["resources"]
    instance = DagsterInstance.ephemeral()
    _clean_records_of_days(
        write_concatenated, local_lake, instance, {1: "2026-11-21", 2: "2026-11-20"}
    )
    tick = _tick("marts_on_new_cleaned_data", resources, None, instance)
    by_day = {r.partition_key: r for r in tick.run_requests}
    assert sorted(by_day) == ["2026-11-20", "2026-11-21"]
    _enqueue(instance, "daily_marts", by_day["2026-11-21"])
    building = _enqueue(
        instance, "daily_marts", by_day["2026-11-20"], status=DagsterRunStatus.STARTED
    )
    _begin_a_step(instance, building, "marts__robot_health_hourly")

    # late records for both days arrive: only the day without a queued run gets a run
    _clean_records_of_days(
        write_concatenated, local_lake, instance, {7: "2026-11-21", 8: "2026-11-20"}
    )
    tick = _tick("marts_on_new_cleaned_data", resources, tick.cursor, instance)
    assert [r.partition_key for r in tick.run_requests] == ["2026-11-20"]
    assert len(_waiting(instance, "daily_marts")) == 1

    tick = _tick("marts_on_new_cleaned_data", resources, tick.cursor, instance)
    assert tick.run_requests == []


def test_an_ingest_run_leaves_the_queue_before_an_older_mart_run(tmp_path):
    """The project's queue settings with one free run slot: the run queue's daemon takes the
    ingest run (`dagster/priority` of the ingest jobs) before a mart run queued earlier."""
    import yaml
    from dagster import RunRequest
    from dagster._core.test_utils import instance_for_test
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
        QueuedRunCoordinatorDaemon,
    )

    from orchestration.launch import PROJECT_CONFIG

    settings = yaml.safe_load(PROJECT_CONFIG.read_text())
    settings["concurrency"]["runs"]["max_concurrent_runs"] = 1
    with instance_for_test(overrides=settings, temp_dir=str(tmp_path)) as instance:
        _enqueue(instance, "daily_marts", RunRequest(partition_key="2026-11-21"))
        ingest = _enqueue(instance, f"ingest_{STREAM}", RunRequest(partition_key=PARTITION))
        daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
        chosen = daemon._get_runs_to_dequeue(instance, instance.get_concurrency_config(), None)
    assert [run.run_id for run in chosen] == [ingest.run_id]
