"""Masking on S3 needs a secret PII_HASH_KEY: the development key is public."""

from __future__ import annotations

import pytest
from dagster import materialize

from lake.pii import MissingPIIKey, require_key_for
from orchestration.definitions import ingest_assets
from tests.s3_resources import s3_resources

pytestmark = pytest.mark.s3


def test_an_s3_run_without_a_key_refuses_to_clean(s3_bucket: str, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("PII_HASH_KEY")
    resources = s3_resources(s3_bucket, tmp_path / "warehouse.duckdb")
    result = materialize(
        ingest_assets("robot_telemetry"),
        partition_key="2026-11-21-09:00",
        resources=resources,
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "PII_HASH_KEY is not set" in str(failure.event_specific_data.error)
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]


def test_the_embedded_default_may_use_the_development_key(monkeypatch) -> None:
    monkeypatch.delenv("PII_HASH_KEY", raising=False)
    require_key_for("file:///tmp/landing", "file:///tmp/lake")
    with pytest.raises(MissingPIIKey):
        require_key_for("file:///tmp/landing", "s3://bucket/lake")
    monkeypatch.setenv("PII_HASH_KEY", "a-secret")
    require_key_for("s3://bucket/landing", "s3://bucket/lake")
