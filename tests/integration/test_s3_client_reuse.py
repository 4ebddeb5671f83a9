"""Landing sensor ticks and steps on an S3 lake reuse the process's boto3 client (issue 15).

Each tick made a new boto3 session and S3 client through S3Resource.get_client(), parsing
botocore's JSON models again: 0.8 s of CPU of a 1.1 s tick (bench/README.md, "s3tick").
Here ticks on moto's S3 over HTTP, each after one object lands, are counted in clients made
by botocore, and their run requests checked."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from dagster import AssetKey, DagsterInstance, build_sensor_context, materialize

from assets.hourly import new_objects_tag
from lake.firehose import partition_key
from lake.storage import open_storage
from tests.s3_resources import s3_resources

pytestmark = pytest.mark.s3
STREAM = "robot_telemetry"
TICKS = 4


@pytest.fixture
def clients_made(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The service of every botocore client made while the test runs."""
    made: list[str] = []
    create = botocore.session.Session.create_client

    def counted(session: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
        made.append(service_name)
        return create(session, service_name, *args, **kwargs)

    monkeypatch.setattr(botocore.session.Session, "create_client", counted)
    yield made


def test_ticks_and_a_step_reuse_one_s3_client(
    s3_bucket: str, tmp_path: Path, write_concatenated: Any, clients_made: list[str]
) -> None:
    from orchestration.definitions import defs, ingest_assets

    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    resources = s3_resources(
        s3_bucket,
        tmp_path / "warehouse.duckdb",
        pipeline_start_date=f"{hour - timedelta(days=1):%Y-%m-%d}",
    )
    landing = open_storage(f"s3://{s3_bucket}/landing")
    repo = defs.get_repository_def()
    sensor = repo.get_sensor_def(f"{STREAM}_landing_sensor")
    cursor, requests = None, []
    with DagsterInstance.ephemeral() as instance:
        clients_made.clear()
        for n in range(TICKS):
            record = {"device_id": f"r{n}", "ts": f"{hour:%Y-%m-%dT%H}:0{n}:00Z"}
            write_concatenated(landing, STREAM, hour + timedelta(minutes=n), [record], f"o{n}")
            with build_sensor_context(
                cursor=cursor, resources=resources, instance=instance, repository_def=repo
            ) as context:
                result = sensor.evaluate_tick(context)
            cursor = result.cursor
            requests += result.run_requests
        ticks_made = list(clients_made)
        step = materialize(
            ingest_assets(STREAM),
            selection=[AssetKey(["landing", STREAM])],
            partition_key=requests[-1].partition_key,
            resources=resources,
            instance=instance,
        )
    # the first tick may make the process's client; the others and the step reuse it
    assert ticks_made.count("s3") <= 1, ticks_made
    assert clients_made.count("s3") <= 1, clients_made
    # each tick asked for a run of the hour with its one new object
    assert [r.partition_key for r in requests] == [partition_key(hour)] * TICKS
    assert [r.tags["stream"] for r in requests] == [STREAM] * TICKS
    assert [r.tags[new_objects_tag("landing")] for r in requests] == ["1"] * TICKS
    assert len({r.run_key for r in requests}) == TICKS
    assert step.success
    [materialization] = step.asset_materializations_for_node(f"landing__{STREAM}")
    assert materialization.metadata["objects"].value == TICKS
