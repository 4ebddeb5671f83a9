"""CLEAN_COMPUTE=subprocess with CLEAN_WORKERS=2: a range run's two chunks of hours cleaned
on two Pipes workers (`python -m workers.clean`), settled and committed by the step, give
what the serial in-process step gives: Iceberg rows, data files and manifests,
materializations by hour and checks, with records redelivered across the chunks' boundary
and within a chunk (tests/unit/test_parallel_hours.py's objects)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from dagster import DagsterInstance

from orchestration.resources import resources_from_env
from tests.dagster.test_pipes_cleaning import outcome, run_range
from tests.unit.test_parallel_hours import make_lake

OPENED = "[pipes] external process successfully opened dagster pipes"
RANGE_TAGS = {
    "dagster/asset_partition_range_start": "2026-11-21-08:00",
    "dagster/asset_partition_range_end": "2026-11-21-13:00",
}


def test_two_subprocess_workers_clean_as_the_serial_step(tmp_path: Path) -> None:
    outcomes = {}
    for compute, workers in (("inprocess", 1), ("subprocess", 2)):
        root = tmp_path / compute
        settings = replace(make_lake(root, workers), clean_compute=compute)
        instance = DagsterInstance.ephemeral()
        result = run_range(resources_from_env(settings), instance=instance, tags=RANGE_TAGS)
        assert result.success, compute
        opened = [e for e in instance.all_logs(result.run_id) if OPENED in (e.user_message or "")]
        assert len(opened) == (2 if compute == "subprocess" else 0)  # a worker per chunk
        outcomes[compute] = outcome(settings, result, root)
    serial, workers = outcomes["inprocess"], outcomes["subprocess"]
    assert sorted(r["event_id"] for r in serial["cleaned"]) == sorted(
        [f"e{n}" for n in range(1, 9)] + [f"e9{n}" for n in range(10)]
    )
    assert len(serial["metadata"]) == 6
    for part in serial:
        assert workers[part] == serial[part], part
