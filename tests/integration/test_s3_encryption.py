"""Server-side encryption on every PUT (S3_SSE, S3_SSE_KMS_KEY_ID), checked on moto over HTTP."""

from __future__ import annotations

import boto3
import pytest

from lake.storage import S3Storage, encryption_from_env, open_storage

pytestmark = pytest.mark.s3


def _sse_of(bucket: str, key: str) -> dict:
    head = boto3.client("s3").head_object(Bucket=bucket, Key=key)
    return {k: v for k, v in head.items() if k in ("ServerSideEncryption", "SSEKMSKeyId")}


def test_every_put_is_encrypted_with_aes256(s3_bucket: str, monkeypatch) -> None:
    monkeypatch.setenv("S3_SSE", "AES256")
    s = open_storage(f"s3://{s3_bucket}/enc")
    assert isinstance(s, S3Storage)
    s.write("plain", b"x")
    tag = s.write_if("created", b"1", None)
    s.write_if("created", b"2", tag)
    for key in ("enc/plain", "enc/created"):
        assert _sse_of(s3_bucket, key) == {"ServerSideEncryption": "AES256"}


def test_kms_with_a_key_id(s3_bucket: str, monkeypatch) -> None:
    monkeypatch.setenv("S3_SSE", "aws:kms")
    monkeypatch.setenv("S3_SSE_KMS_KEY_ID", "alias/lake")
    s = open_storage(f"s3://{s3_bucket}/kms")
    s.write("k", b"x")
    sse = _sse_of(s3_bucket, "kms/k")
    assert sse["ServerSideEncryption"] == "aws:kms" and "alias/lake" in sse["SSEKMSKeyId"]


@pytest.mark.parametrize(
    "env",
    [
        {"S3_SSE": "AES-256"},
        {"S3_SSE": "kms"},
        {"S3_SSE_KMS_KEY_ID": "k"},
        {"S3_SSE": "AES256", "S3_SSE_KMS_KEY_ID": "k"},
    ],
)
def test_a_wrong_setting_is_refused_not_ignored(monkeypatch, env: dict) -> None:
    monkeypatch.delenv("S3_SSE", raising=False)
    monkeypatch.delenv("S3_SSE_KMS_KEY_ID", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError):
        encryption_from_env()
