"""Dagster resources for tests of a lake on moto's S3 (imported by tests, not a conftest)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

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
