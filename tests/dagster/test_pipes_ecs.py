"""CLEAN_COMPUTE=ecs: the PipesECSClient and RunTask arguments built from the settings.
No ECS here, so nothing runs a task: the client's and the request's arguments are held
against the settings; the worker's settings travel as environment text and come back."""

from __future__ import annotations

import boto3
import pytest

from lake.settings import Settings, SettingsError
from orchestration.pipes_compute import ecs_client, ecs_task_params

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
