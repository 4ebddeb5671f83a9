"""Dagster resources for tests of a lake on moto's S3 (imported by tests, not a conftest)."""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import boto3
from dagster import DagsterInstance, RepositoryDefinition, build_sensor_context

from lake.settings import Settings
from orchestration.resources import resources_from_env


def s3_resources(
    bucket: str, warehouse: Path, pii_secret_id: str | None = None, **settings: Any
) -> dict[str, object]:
    """The Dagster resources of a lake whose landing and lake are prefixes of `bucket`,
    built as the code location builds them from the test's environment (the PII key from
    PII_HASH_KEY, else from Secrets Manager secret `pii_secret_id`), with `settings`
    (Settings fields) on top. The `sql` Iceberg catalog sits beside the warehouse (the
    default for an S3 lake, the checkout's data/, would outlive the test's bucket)."""
    settings.setdefault("iceberg_catalog_uri", f"sqlite:///{warehouse.parent / 'iceberg.db'}")
    return resources_from_env(
        replace(
            Settings.from_env(),
            landing_uri=f"s3://{bucket}/landing",
            lake_uri=f"s3://{bucket}/lake",
            warehouse_path=str(warehouse),
            pii_hash_key_secret_id=pii_secret_id,
            **settings,
        )
    )


@cache
def _repository() -> RepositoryDefinition:
    from orchestration.definitions import defs  # the whole code location: only when asked

    return defs.get_repository_def()


def landing_events_tick(resources: dict, cursor: str | None, instance: DagsterInstance):
    """One tick of landing_events_sensor (SQS mode) from `cursor`, with `resources`."""
    repo = _repository()
    sensor = repo.get_sensor_def("landing_events_sensor")
    with build_sensor_context(
        cursor=cursor, resources=resources, instance=instance, repository_def=repo
    ) as context:
        return sensor.evaluate_tick(context)


def messages_in_queue(url: str) -> int:
    """The queue's messages, visible or in flight (received, not yet deleted)."""
    attrs = boto3.client("sqs").get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )
