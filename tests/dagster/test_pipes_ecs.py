"""CLEAN_COMPUTE=ecs: the PipesECSClient and RunTask arguments built from the settings
(the client's and the request's arguments held against the settings; the worker's
settings travel as environment text and come back), and CLEAN_WORKERS=2 on ECS: a task per
chunk, run here behind a stand-in for the ECS API (LocalECS) with the lake, the Pipes
session and the handoffs on moto's S3, gives the serial step's outcome."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from dagster import DagsterInstance

from lake.settings import REPO_ROOT, Settings, SettingsError
from lake.storage import S3Storage
from orchestration import pipes_compute
from orchestration.pipes_compute import ecs_client, ecs_task_params
from orchestration.resources import resources_from_env
from tests.dagster.test_parallel_pipes import (
    RANGE_TAGS,
    handed_back,
    s3_lake,
    s3_outcome,
    serial_on_s3,
)
from tests.dagster.test_pipes_cleaning import run_range
from tests.unit.test_parallel_hours import SPEC

ENV = {
    "CLEAN_COMPUTE": "ecs",
    "CLEAN_ECS_CLUSTER": "lake-workers",
    "CLEAN_ECS_TASK_DEFINITION": "lake-worker:7",
    "CLEAN_ECS_SUBNETS": "subnet-a, subnet-b",
    "LAKE_URI": "s3://the-lake/prod",
    "LANDING_URI": "s3://the-landing/firehose",
}


def test_the_ecs_client_talks_through_the_lakes_bucket_and_runs_the_worker_task() -> None:
    settings = Settings.from_env(ENV)
    s3 = boto3.client("s3", region_name="us-east-1")
    ecs = boto3.client("ecs", region_name="us-east-1")

    client = ecs_client(settings, s3_client=s3, ecs=ecs)
    assert client._client is ecs
    injector, reader = client._context_injector, client._message_reader
    assert (injector.bucket, injector.key_prefix, injector.client) == (
        "the-lake",
        "prod/_state/pipes/",
        s3,
    )
    assert (reader.bucket, reader.client) == ("the-lake", s3)
    with reader.get_params() as params:  # the worker writes its messages there
        assert params["key_prefix"].startswith("prod/_state/pipes/messages/")

    params = ecs_task_params(settings, ["python", "-m", "workers.clean"])
    assert params["cluster"] == "lake-workers"
    assert params["taskDefinition"] == "lake-worker:7"
    assert params["launchType"] == "FARGATE" and params["count"] == 1
    network = params["networkConfiguration"]["awsvpcConfiguration"]
    assert network == {"subnets": ["subnet-a", "subnet-b"], "assignPublicIp": "DISABLED"}
    [override] = params["overrides"]["containerOverrides"]
    assert override == {"name": "worker", "command": ["python", "-m", "workers.clean"]}


def test_ecs_needs_its_cluster_task_and_subnets_and_a_lake_on_s3() -> None:
    with pytest.raises(SettingsError, match="CLEAN_ECS_CLUSTER"):
        Settings.from_env({k: v for k, v in ENV.items() if k != "CLEAN_ECS_SUBNETS"})
    local = Settings.from_env({**ENV, "LAKE_URI": "file:///tmp/lake"})
    with pytest.raises(SettingsError, match="LAKE_URI on S3"):
        ecs_client(local)


def test_a_workers_settings_are_the_orchestrators_without_the_secret() -> None:
    settings = Settings.from_env({**ENV, "PII_HASH_KEY": "k", "CLEAN_CHUNK_BYTES": "1000"})
    sent = settings.as_env()
    assert "PII_HASH_KEY" not in sent
    assert Settings.from_env(sent) == Settings.from_env({**ENV, "CLEAN_CHUNK_BYTES": "1000"})


class LocalECS:
    """The ECS API boundary, and only it: RunTask starts the task's container command here
    (the task definition's image is this checkout), its overrides' environment on top of
    the test's; the waiter waits for it; DescribeTasks gives its exit code. The Pipes
    context, messages and chunk handoffs go through moto's S3 as on AWS."""

    meta = SimpleNamespace(region_name="us-east-1")

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.tasks: dict[str, subprocess.Popen] = {}

    def describe_task_definition(self, taskDefinition: str) -> dict[str, Any]:
        return {"taskDefinition": {"containerDefinitions": [{"name": "worker"}]}}

    def run_task(self, **request: Any) -> dict[str, Any]:
        self.requests.append(copy.deepcopy(request))
        [override] = request["overrides"]["containerOverrides"]
        env = {**os.environ, **{e["name"]: e["value"] for e in override["environment"]}}
        python, *args = override["command"]
        arn = f"arn:aws:ecs:us-east-1:000000000000:task/{request['cluster']}/{uuid.uuid4().hex}"
        self.tasks[arn] = subprocess.Popen([sys.executable, *args], env=env, cwd=REPO_ROOT)
        return {"tasks": [{"taskArn": arn, "containers": [{"name": "worker"}]}]}

    def get_waiter(self, name: str) -> SimpleNamespace:
        assert name == "tasks_stopped"
        return SimpleNamespace(wait=lambda tasks, **_: [self.tasks[t].wait() for t in tasks])

    def describe_tasks(self, tasks: list[str], cluster: str) -> dict[str, Any]:
        return {
            "tasks": [
                {
                    "taskArn": t,
                    "clusterArn": f"arn:aws:ecs:us-east-1:000000000000:cluster/{cluster}",
                    "containers": [{"runtimeId": t, "exitCode": self.tasks[t].returncode}],
                }
                for t in tasks
            ]
        }


def test_ecs_runs_a_task_per_chunk_that_hands_back_through_the_lake(
    s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = serial_on_s3(s3_bucket, tmp_path)
    ecs = LocalECS()
    real_boto3 = pipes_compute.boto3
    clients = SimpleNamespace(
        client=lambda name, **kw: ecs if name == "ecs" else real_boto3.client(name, **kw)
    )
    monkeypatch.setattr(pipes_compute, "boto3", clients)
    settings = s3_lake(
        s3_bucket,
        "ecs",
        tmp_path / "ecs",
        clean_workers=2,
        clean_compute="ecs",
        clean_ecs_cluster="lake-workers",
        clean_ecs_task_definition="lake-worker:7",
        clean_ecs_subnets=("subnet-a",),
    )
    instance = DagsterInstance.ephemeral()
    result = run_range(resources_from_env(settings), instance=instance, tags=RANGE_TAGS)
    assert result.success

    # one single-task RunTask per chunk, its overrides naming the chunk and its handoff
    assert len(ecs.requests) == 2 and all(r["count"] == 1 for r in ecs.requests)
    chunks = f"s3://{s3_bucket}/ecs/lake/_state/chunks/{SPEC.name}/"
    named = []
    for request in ecs.requests:
        assert request["taskDefinition"] == "lake-worker:7"
        [override] = request["overrides"]["containerOverrides"]
        assert override["name"] == "worker"
        assert override["command"] == ["python", "-m", "workers.clean"]
        env = {e["name"]: e["value"] for e in override["environment"]}
        assert "PII_HASH_KEY" not in env  # the task's secret, never its overrides
        assert env["LAKE_CLEAN_HANDOFF"].startswith(chunks)
        token, first = env["LAKE_CLEAN_HANDOFF"].removeprefix(chunks).split("/")[:2]
        named.append((env["LAKE_CLEAN_CHUNK"], first, token))
    assert sorted(n[:2] for n in named) == [
        ("2026-11-21T08..2026-11-21T10", "20261121T08"),
        ("2026-11-21T11..2026-11-21T13", "20261121T11"),
    ]
    assert len({token for *_, token in named}) == 1  # the run's
    handoffs = sorted(f"{chunks}{token}/{first}/" for _, first, token in named)
    assert handed_back(instance, result.run_id) == handoffs  # the workers wrote there
    assert not list(S3Storage(s3_bucket, "ecs/lake").list("_state/chunks/"))  # dropped
    assert s3_outcome(settings, result, s3_bucket, "ecs") == serial
    keys = [
        o["Key"]
        for page in boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=s3_bucket)
        for o in page.get("Contents", [])
    ]
    outside = [k for k in keys if not k.startswith(("ecs/lake/", "ecs/landing/", "serial/"))]
    assert not outside  # Pipes' context and messages too: the role may write only the lake
