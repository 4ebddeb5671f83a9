"""Server-side encryption on every PUT (S3_SSE, S3_SSE_KMS_KEY_ID), checked on moto over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from dagster import materialize

from lake.settings import Settings, SettingsError
from lake.simulator import Simulator, SimulatorConfig
from lake.storage import S3Storage, encryption_args, open_storage
from orchestration.definitions import ingest_assets
from tests.s3_resources import s3_resources

pytestmark = pytest.mark.s3


def _sse_of(bucket: str, key: str) -> dict:
    head = boto3.client("s3").head_object(Bucket=bucket, Key=key)
    return {k: v for k, v in head.items() if k in ("ServerSideEncryption", "SSEKMSKeyId")}


def test_every_put_is_encrypted_with_aes256(s3_bucket: str) -> None:
    s = open_storage(f"s3://{s3_bucket}/enc", put_args=encryption_args("AES256"))
    assert isinstance(s, S3Storage)
    s.write("plain", b"x")
    tag = s.write_if("created", b"1", None)
    s.write_if("created", b"2", tag)
    for key in ("enc/plain", "enc/created"):
        assert _sse_of(s3_bucket, key) == {"ServerSideEncryption": "AES256"}


def test_kms_with_a_key_id(s3_bucket: str) -> None:
    s = open_storage(f"s3://{s3_bucket}/kms", put_args=encryption_args("aws:kms", "alias/lake"))
    s.write("k", b"x")
    sse = _sse_of(s3_bucket, "kms/k")
    assert sse["ServerSideEncryption"] == "aws:kms" and "alias/lake" in sse["SSEKMSKeyId"]


def test_the_pipeline_writes_and_reads_the_lake_with_sse_kms(s3_bucket: str, tmp_path) -> None:
    """Every lake object an ingest run writes is SSE-KMS (the IAM check of docs/security.md
    then sees the KMS permissions a run needs)."""
    start = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    sim = Simulator(SimulatorConfig(seed=5, streams=("robot_telemetry",), object_interval_s=1200))
    list(sim.write_range(open_storage(f"s3://{s3_bucket}/landing"), start, start.replace(hour=9)))
    resources = s3_resources(
        s3_bucket, tmp_path / "warehouse.duckdb", s3_sse="aws:kms", s3_sse_kms_key_id="alias/lake"
    )
    result = materialize(
        ingest_assets("robot_telemetry"), partition_key="2026-11-21-08:00", resources=resources
    )
    assert result.success
    lake_keys = [
        o["Key"]
        for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket, Prefix="lake/")["Contents"]
    ]
    assert any(k.startswith("lake/cleaned/") for k in lake_keys)
    for key in lake_keys:
        assert _sse_of(s3_bucket, key)["ServerSideEncryption"] == "aws:kms", key


@pytest.mark.parametrize(
    "env",
    [
        {"S3_SSE": "AES-256"},
        {"S3_SSE": "kms"},
        {"S3_SSE_KMS_KEY_ID": "k"},
        {"S3_SSE": "AES256", "S3_SSE_KMS_KEY_ID": "k"},
    ],
)
def test_a_wrong_setting_is_refused_not_ignored(env: dict) -> None:
    with pytest.raises(SettingsError, match="S3_SSE"):
        Settings.from_env(env)
    with pytest.raises(ValueError, match="S3_SSE"):
        encryption_args(env.get("S3_SSE"), env.get("S3_SSE_KMS_KEY_ID"))
