"""Dagster resources for tests of a lake on moto's S3 (imported by tests, not a conftest)."""

from __future__ import annotations

from pathlib import Path

from dagster_aws.s3 import S3Resource
from dagster_duckdb import DuckDBResource

from orchestration.resources import LakeResource


def s3_resources(bucket: str, warehouse: Path) -> dict[str, object]:
    """The Dagster resources of a lake whose landing and lake are prefixes of `bucket`."""
    return {
        "lake": LakeResource(
            landing_uri=f"s3://{bucket}/landing", lake_uri=f"s3://{bucket}/lake", s3=S3Resource()
        ),
        "warehouse": DuckDBResource(database=str(warehouse)),
    }
