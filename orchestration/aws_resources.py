"""The optional AWS services as resources: each is off while its setting is unset, and
builds its boto3 client (AWS_ENDPOINT_URL, AWS_REGION and the credential chain apply)
for the plain classes of lake/ that do the work."""

from __future__ import annotations

from typing import Any

import boto3
from dagster import ConfigurableResource

from lake.alerts import Publish, log_publisher, sns_publisher
from lake.glue_sync import DEFAULT_CONFIG as GLUE_CONFIG
from lake.glue_sync import GlueSync
from lake.redshift_data_api import RedshiftLoader, redshift_target
from lake.settings import DEFAULTS


class AlertsResource(ConfigurableResource):
    """Where alert marts notify: the SNS topic ALERTS_SNS_TOPIC_ARN, else the run log."""

    sns_topic_arn: str | None = None

    def publisher(self) -> tuple[Publish, str]:
        """The publish function and a name for the metadata."""
        if not self.sns_topic_arn:
            return log_publisher, "log"
        topic = self.sns_topic_arn
        return sns_publisher(topic, boto3.client("sns")), f"sns:{topic}"


class RedshiftResource(ConfigurableResource):
    """The Redshift Data API load of mart partitions: off without a workgroup (Serverless)
    or a cluster id; `iam_role` is the load scripts' COPY role either way."""

    workgroup: str | None = None
    cluster_id: str | None = None
    database: str = DEFAULTS.redshift_database
    db_user: str | None = None
    secret_arn: str | None = None
    iam_role: str = DEFAULTS.redshift_iam_role
    timeout_seconds: float = DEFAULTS.redshift_load_timeout_seconds

    def loader(self) -> RedshiftLoader | None:
        if not self.workgroup and not self.cluster_id:
            return None
        target = redshift_target(
            self.database, self.workgroup, self.cluster_id, self.db_user, self.secret_arn
        )
        client = boto3.client("redshift-data")
        return RedshiftLoader(target, client, timeout_s=self.timeout_seconds)


class GlueResource(ConfigurableResource):
    """The AWS Glue database kept in step with the lake's catalog; off without one."""

    database: str | None = None

    def sync(self) -> GlueSync | None:
        if not self.database:
            return None
        return GlueSync(self.database, boto3.client("glue", config=GLUE_CONFIG))


class LandingEventsResource(ConfigurableResource):
    """SQS mode: the queue of S3 ObjectCreated events; off (the sensors list) without it."""

    queue_url: str | None = None
    wait_seconds: int = DEFAULTS.landing_sqs_wait_seconds  # a tick's first receive

    def client(self) -> Any:
        return boto3.client("sqs")
