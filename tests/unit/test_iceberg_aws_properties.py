"""The Glue catalog and the S3 FileIO get the endpoint, region and retries boto3 would use
(the integration test runs them on moto: tests/integration/test_iceberg_glue.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lake.iceberg.catalog import LakeTables, catalog_properties, s3_file_io_properties
from lake.settings import DEFAULTS

S3_LAKE = replace(DEFAULTS, lake_uri="s3://acme-lake/lake", lake_catalog="glue")


@pytest.fixture(autouse=True)
def clean_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_GLUE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")  # no profile region from the machine


def test_an_endpoint_is_handed_to_pyarrow_which_then_signs_with_the_region(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert s3_file_io_properties() == {
        "s3.endpoint": "http://127.0.0.1:5000",
        "s3.region": "eu-west-1",
    }
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://minio:9000")  # boto3's S3-only setting
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    assert s3_file_io_properties() == {
        "s3.endpoint": "http://minio:9000",
        "s3.region": "eu-central-1",
    }


def test_on_aws_the_bucket_region_is_resolved() -> None:
    assert s3_file_io_properties() == {"s3.resolve-region": "true"}


def test_a_local_lake_gets_no_s3_properties(tmp_path) -> None:
    settings = replace(DEFAULTS, lake_uri=(tmp_path / "lake").as_uri())
    assert not any(k.startswith("s3.") for k in catalog_properties(settings))


def test_the_glue_catalog_uses_boto3s_glue_endpoint_and_region(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    monkeypatch.setenv("AWS_ENDPOINT_URL_GLUE", "http://glue.local:4566")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    catalog = LakeTables(S3_LAKE).catalog
    assert type(catalog).__name__ == "GlueCatalog"
    assert catalog.glue.meta.endpoint_url == "http://glue.local:4566"
    assert catalog.glue.meta.region_name == "eu-west-1"
    assert catalog.glue.meta.config.retries["mode"] == "adaptive"
    assert catalog.properties["s3.endpoint"] == "http://127.0.0.1:5000"
    assert catalog.properties["warehouse"] == "s3://acme-lake/lake"
