"""Resources: the settings, the landing zone and the lake, the warehouse, the PII key, and
the optional AWS services, all built once from the environment by resources_from_env."""

from __future__ import annotations

import os
from typing import Any

from dagster import ConfigurableResource, EnvVar, Failure
from dagster_aws.s3 import S3Resource
from dagster_aws.utils import construct_boto_client_retry_config
from dagster_duckdb import DuckDBResource

from lake.pii import PIIKey, PIIKeyError, resolve_key
from lake.s3_clients import shared_client
from lake.settings import DEFAULTS, Settings, env_name
from lake.storage import Storage, encryption_args, open_storage
from orchestration.aws_resources import (
    AlertsResource,
    GlueResource,
    LandingEventsResource,
    RedshiftResource,
)


class LakeResource(ConfigurableResource):
    """The landing zone and the lake: `file://` folders or `s3://bucket/prefix`."""

    landing_uri: str
    lake_uri: str
    s3: S3Resource
    s3_sse: str | None = None  # server-side encryption of every PUT (AES256 | aws:kms)
    s3_sse_kms_key_id: str | None = None
    s3_read_attempts: int = DEFAULTS.s3_read_attempts

    def landing(self) -> Storage:
        return self._open(self.landing_uri)

    def lake(self) -> Storage:
        return self._open(self.lake_uri)

    def _open(self, uri: str) -> Storage:
        if not uri.startswith("s3://"):
            return open_storage(uri)
        put_args = encryption_args(self.s3_sse, self.s3_sse_kms_key_id)
        return open_storage(uri, s3_client(self.s3), put_args, self.s3_read_attempts)


def s3_client(s3: S3Resource) -> Any:
    """The client `s3.get_client()` makes, made once a process (lake.s3_clients): a new one
    a sensor tick or step cost 0.3-0.8 s of CPU parsing botocore's models."""
    retry_config = construct_boto_client_retry_config(s3.max_attempts)
    return shared_client(
        "s3",
        profile=s3.profile_name,
        config={"retries": retry_config.retries},
        unsigned=s3.use_unsigned_session,
        region_name=s3.region_name,
        use_ssl=s3.use_ssl,
        verify=s3.verify,
        endpoint_url=s3.endpoint_url,
        aws_access_key_id=s3.aws_access_key_id,
        aws_secret_access_key=s3.aws_secret_access_key,
        aws_session_token=s3.aws_session_token,
    )


class PIIKeyResource(ConfigurableResource):
    """The PII hash key: `key` (PII_HASH_KEY), else the Secrets Manager secret `secret_id`
    (name or ARN), else the development key (local folders only); see lake.pii."""

    key: str | None = None
    secret_id: str | None = None

    def key_for(self, *uris: str) -> PIIKey:
        """The key for masking data of `uris`; a Dagster Failure (no retry when another
        attempt cannot help) when there is none."""
        try:
            return resolve_key(*uris, env_key=self.key, secret_id=self.secret_id)
        except PIIKeyError as exc:
            raise Failure(str(exc), allow_retries=exc.retryable) from exc


def from_env(settings: Settings, name: str) -> Any:
    """A string setting's value for a resource: EnvVar when it is the environment's (Dagster
    reads it at run time and shows the variable's name, not its value), else the value."""
    value = getattr(settings, name)
    variable = env_name(name)
    if value is not None and os.environ.get(variable, "").strip() == value:
        return EnvVar(variable)
    return value


def resources_from_env(settings: Settings) -> dict[str, Any]:
    """Every resource the assets and sensors take, from `settings` (Settings.from_env())."""
    s3 = S3Resource(max_attempts=10)  # boto3 reads AWS_ENDPOINT_URL / AWS_REGION itself
    return {
        "settings": settings,
        "lake": LakeResource(
            landing_uri=settings.landing_uri,
            lake_uri=settings.lake_uri,
            s3=s3,
            s3_sse=settings.s3_sse,
            s3_sse_kms_key_id=settings.s3_sse_kms_key_id,
            s3_read_attempts=settings.s3_read_attempts,
        ),
        "warehouse": DuckDBResource(database=settings.warehouse_path),
        "pii_key": PIIKeyResource(
            key=from_env(settings, "pii_hash_key"),
            secret_id=from_env(settings, "pii_hash_key_secret_id"),
        ),
        "alerts": AlertsResource(sns_topic_arn=from_env(settings, "alerts_sns_topic_arn")),
        "redshift": RedshiftResource(
            workgroup=from_env(settings, "redshift_workgroup"),
            cluster_id=from_env(settings, "redshift_cluster_id"),
            database=from_env(settings, "redshift_database"),
            db_user=from_env(settings, "redshift_db_user"),
            secret_arn=from_env(settings, "redshift_secret_arn"),
            iam_role=from_env(settings, "redshift_iam_role"),
            timeout_seconds=settings.redshift_load_timeout_seconds,
        ),
        "glue": GlueResource(database=from_env(settings, "glue_database")),
        "landing_events": LandingEventsResource(
            queue_url=from_env(settings, "landing_sqs_queue_url"),
            wait_seconds=settings.landing_sqs_wait_seconds,
        ),
    }
