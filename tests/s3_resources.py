"""Dagster resources for tests of a lake on moto's S3 (imported by tests, not a conftest)."""

from __future__ import annotations

from pathlib import Path

from dagster_aws.s3 import S3Resource
from dagster_duckdb import DuckDBResource

from orchestration.resources import LakeResource, PIIKeyResource


def s3_resources(
    bucket: str, warehouse: Path, pii_secret_id: str | None = None
) -> dict[str, object]:
    """The Dagster resources of a lake whose landing and lake are prefixes of `bucket`
    (the PII key from PII_HASH_KEY, else from Secrets Manager secret `pii_secret_id`)."""
    return {
        "lake": LakeResource(
            landing_uri=f"s3://{bucket}/landing", lake_uri=f"s3://{bucket}/lake", s3=S3Resource()
        ),
        "warehouse": DuckDBResource(database=str(warehouse)),
        "pii_key": PIIKeyResource(secret_id=pii_secret_id),
    }
