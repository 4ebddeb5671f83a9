"""The resources built from Settings: optional AWS services off while unset, values from
the environment handed to Dagster as EnvVar (shown by name, resolved at run time)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from dagster import EnvVar

from lake.settings import DEFAULTS, Settings
from orchestration.resources import resources_from_env


def test_optional_aws_services_are_off_while_unset() -> None:
    resources = resources_from_env(DEFAULTS)
    assert resources["settings"] is DEFAULTS
    assert resources["alerts"].publisher()[1] == "log"
    assert resources["redshift"].loader() is None
    assert resources["redshift"].iam_role == "default"
    assert resources["glue"].sync() is None
    assert resources["landing_events"].queue_url is None
    assert resources["pii_key"].key is None and resources["pii_key"].secret_id is None


def test_values_from_the_environment_reach_resources_as_env_vars(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Dagster resolves EnvVar at run time and shows the variable, not the value; a value
    that is not the environment's (a test's) is passed as it is."""
    monkeypatch.setenv("ALERTS_SNS_TOPIC_ARN", "arn:aws:sns:us-east-1:1:alerts")
    monkeypatch.setenv("PII_HASH_KEY", "canary-77d1")
    settings = replace(Settings.from_env(), glue_database="lake_glue")
    resources = resources_from_env(settings)
    topic, key = resources["alerts"].sns_topic_arn, resources["pii_key"].key
    assert isinstance(topic, EnvVar) and topic.env_var_name == "ALERTS_SNS_TOPIC_ARN"
    assert isinstance(key, EnvVar) and key.env_var_name == "PII_HASH_KEY"
    assert resources["glue"].database == "lake_glue"
    assert not isinstance(resources["glue"].database, EnvVar)


def test_the_lake_s3_client_has_the_s3_resources_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared client (orchestration.resources.s3_client) is the one S3Resource.get_client()
    makes: endpoint, region, retries and keys of the resource; one a process."""
    from dagster_aws.s3 import S3Resource

    from orchestration.resources import s3_client

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-the-environment")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    resource = S3Resource(
        max_attempts=7,
        region_name="eu-central-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="from-the-resource",
        aws_secret_access_key="resource-secret",
    )
    shared, own = s3_client(resource), resource.get_client()
    assert s3_client(resource) is shared
    for client in (shared, own):
        assert client.meta.endpoint_url == "http://127.0.0.1:9"
        assert client.meta.region_name == "eu-central-1"
    assert shared.meta.config.retries == own.meta.config.retries
    assert shared._request_signer._credentials.access_key == "from-the-resource"
    unsigned = s3_client(S3Resource(max_attempts=7, use_unsigned_session=True))
    assert unsigned is not shared
