"""Sensor cadence under Dagster's own sensor daemon: a sensor set to tick every N seconds
ticks at the daemon's look N seconds after its last one, not one look later. Real daemon
iteration, real definitions, real instance; time frozen per look."""

import logging
from collections.abc import Iterator

import pytest
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.scheduler.instigation import TickStatus
from dagster._core.test_utils import (
    create_test_daemon_workspace_context,
    freeze_time,
    instance_for_test,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.sensor import execute_sensor_iteration

from orchestration.definitions import settings

# a landing sensor (SENSOR_INTERVAL_SECONDS) and the marts sensor (MARTS_SENSOR_INTERVAL_SECONDS)
SENSORS = {
    "robot_telemetry_landing_sensor": settings.sensor_interval_seconds,
    "marts_on_new_cleaned_data": settings.marts_sensor_interval_seconds,
}
# runs a tick requests are only queued (no queue daemon here): a test never launches one
QUEUE_ONLY = {
    "run_coordinator": {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"}
}
T0 = 1_795_000_000.0  # a fixed instant; only differences matter


@pytest.fixture(params=sorted(SENSORS))
def daemon(request, tmp_path) -> Iterator[tuple[WorkspaceProcessContext, str]]:
    """The project's code location in a daemon's workspace, with every sensor but one
    stopped (reconciliation would write the checkout's default lake)."""
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="orchestration.definitions")
    )
    with (
        instance_for_test(temp_dir=str(tmp_path), overrides=QUEUE_ONLY) as instance,
        create_test_daemon_workspace_context(
            InProcessWorkspaceLoadTarget(origin), instance
        ) as context,
    ):
        workspace = context.create_request_context()
        for location in workspace.code_locations:
            for repo in location.get_repositories().values():
                for remote in repo.get_sensors():
                    if remote.name != request.param:
                        instance.stop_sensor(
                            remote.get_remote_origin_id(), remote.selector_id, remote
                        )
        yield context, request.param


def _look(context: WorkspaceProcessContext, at: float) -> None:
    """One pass of the sensor daemon's loop at `at` (its ticks start then)."""
    with freeze_time(at):
        list(execute_sensor_iteration(context, logging.getLogger(__name__), None, None))


def _ticks(context: WorkspaceProcessContext, sensor: str) -> list[float]:
    instance = context.instance
    state = next(s for s in instance.all_instigator_state() if s.instigator_name == sensor)
    ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id)
    return sorted(t.timestamp for t in ticks if t.status != TickStatus.STARTED)


def test_a_sensor_ticks_at_the_look_its_interval_after_its_last_tick(daemon):
    """The daemon looks every 5 s; a tick starts a moment (here 0.1 s) after the look that
    took it, so the look `interval` later comes 0.1 s short of it. It must tick then: a
    sensor skipped at that look waits for the next one, and a 5 s sensor ticked every 10 s."""
    context, sensor = daemon
    interval = SENSORS[sensor]
    assert interval % 5 == 0  # a multiple of the daemon's loop: a look falls on it
    _look(context, T0 + 0.1)
    _look(context, T0 + interval)
    _look(context, T0 + 2 * interval)
    assert _ticks(context, sensor) == [T0 + 0.1, T0 + interval, T0 + 2 * interval]
