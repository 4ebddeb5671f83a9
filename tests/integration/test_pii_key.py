"""The PII hash key: PII_HASH_KEY, else a Secrets Manager secret (moto over HTTP), else the
public development key (local folders only); it never shows in logs, events or errors."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import io
import json
import logging
import re
import secrets
import string
import traceback
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import duckdb
import pyarrow.parquet as pq
import pytest
from botocore.stub import Stubber
from dagster import DagsterInstance, Failure, RetryPolicy, materialize
from dagster._serdes import serialize_value
from moto.core.authorization import enable_iam_authentication

import assets.hourly
import lake.cleaning.masking
from lake.cleaning.columns import Column
from lake.cleaning.typing_query import masking_sql
from lake.firehose import object_key
from lake.pii import (
    DEV_KEY,
    MissingPIIKey,
    PIIKey,
    SecretUnavailable,
    install_key,
    resolve_key,
)
from lake.pii_secret import fetch_secret, secrets_client
from lake.sql_text import sql_string
from lake.streams import load_streams
from orchestration.definitions import ingest_assets
from orchestration.resources import PIIKeyResource
from tests.s3_resources import s3_resources

pytestmark = pytest.mark.s3

STREAM = "robot_telemetry"
HOUR = datetime(2026, 11, 21, 9, tzinfo=UTC)
PARTITION = "2026-11-21-09:00"
EMAILS = ["ann@example.com", "bob@example.com"]


def canary_key() -> str:
    """A fresh key of lowercase letters: XOR 0x36 and XOR 0x5C keep them printable, so the
    raw padded keys are findable as text too."""
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(40))


def leak_forms(key: str) -> dict[str, str]:
    """Every way the key could show up in text: itself, hex, base64, and the key-bearing
    part of HMAC's padded keys (the rest is the same for every key)."""
    raw = key.encode()
    ipad, opad = (pad[: len(raw)] for pad in PIIKey(raw, "test").pads())
    return {
        "key": key,
        "key hex": raw.hex(),
        "key base64": base64.b64encode(raw).decode().rstrip("="),
        "key base64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "ipad hex": ipad.hex(),
        "opad hex": opad.hex(),
        "ipad text": ipad.decode("latin-1"),
        "opad text": opad.decode("latin-1"),
    }


PIECE = 20  # a leak cut short (an error message shows a window of its SQL) still counts


def found_in(texts: Iterable[str | bytes], key: str) -> list[str]:
    """The leak forms of `key` found, whole or any PIECE characters of them, in any of
    `texts` (hex case-insensitively)."""
    pieces = [
        (name, form[i : i + PIECE])
        for name, form in leak_forms(key).items()
        for i in range(0, max(len(form) - PIECE, 0) + 1, 2)
    ]
    found = set()
    for text in texts:
        text = text.decode("latin-1") if isinstance(text, bytes) else text
        lower = text.lower()
        found |= {n for n, p in pieces if p in text or ("hex" in n and p in lower)}
    return sorted(found)


def run_texts(result: Any, instance: DagsterInstance) -> Iterator[str]:
    """Everything Dagster recorded of a run: each event (metadata, messages, error infos
    with stack traces and causes) and the instance's event log."""
    for event in result.all_events:
        yield serialize_value(event)
    for entry in instance.all_logs(result.run_id):
        yield serialize_value(entry)
        if entry.dagster_event and entry.dagster_event.event_specific_data:
            error = getattr(entry.dagster_event.event_specific_data, "error", None)
            if error is not None:
                yield error.to_string()


def folder_bytes(root: Path) -> Iterator[bytes]:
    """Every file under `root` (the instance's SQLite event logs, compute logs, ...)."""
    for path in root.rglob("*"):
        if path.is_file():
            yield path.read_bytes()


def bucket_bytes(bucket: str) -> Iterator[bytes]:
    s3 = boto3.client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            yield s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()


def land_records(bucket: str, tag: str = "pii", minute: int = 5) -> None:
    records = [
        {
            "event_id": f"{tag}-{i}",
            "ts": f"2026-11-21T09:0{i}:00Z",
            "robot_id": "R1",
            "operator": {"name": "Ann", "email": email},
        }
        for i, email in enumerate(EMAILS)
    ]
    key = object_key(STREAM, HOUR.replace(minute=minute), object_id=tag)
    body = gzip.compress("".join(json.dumps(r) for r in records).encode(), mtime=0)
    boto3.client("s3").put_object(Bucket=bucket, Key=f"landing/{key}", Body=body)


def cleaned_emails(bucket: str) -> list[str]:
    s3 = boto3.client("s3")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"lake/cleaned/{STREAM}/")
    emails = []
    for o in listed.get("Contents", []):
        if not o["Key"].endswith(".parquet"):
            continue  # the Iceberg table's metadata/
        body = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
        emails += pq.read_table(io.BytesIO(body)).column("operator_email").to_pylist()
    return sorted(emails)


def hmac_hex(key: str, value: str) -> str:
    return hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()


def create_secret(name: str, **value: Any) -> str:
    return boto3.client("secretsmanager").create_secret(Name=name, **value)["ARN"]


def clean(
    bucket: str, tmp_path: Path, instance: DagsterInstance, secret_id: str | None = None
) -> Any:
    return materialize(
        ingest_assets(STREAM),
        partition_key=PARTITION,
        resources=s3_resources(bucket, tmp_path / "warehouse.duckdb", pii_secret_id=secret_id),
        instance=instance,
        raise_on_error=False,
    )


def step_failure(result: Any) -> Any:
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return failure.event_specific_data.error


def materialized_metadata(result: Any) -> dict[str, Any]:
    (event,) = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.path == ["cleaned", STREAM]
    ]
    return event.materialization.metadata


def disk_instance(root: Path) -> DagsterInstance:
    """An instance on disk, so its stored event log and compute logs can be scanned too."""
    root.mkdir(parents=True)
    return DagsterInstance.local_temp(tempdir=str(root))


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[DagsterInstance]:
    with disk_instance(tmp_path / "dagster") as instance:
        yield instance


# --- where the key comes from -------------------------------------------------------------


def test_the_key_comes_from_secrets_manager(
    s3_bucket: str, tmp_path: Path, monkeypatch, instance
) -> None:
    monkeypatch.delenv("PII_HASH_KEY")
    key = canary_key()
    create_secret("lake/pii-key", SecretString=key)
    land_records(s3_bucket)
    result = clean(s3_bucket, tmp_path, instance, secret_id="lake/pii-key")
    assert result.success
    assert cleaned_emails(s3_bucket) == sorted(hmac_hex(key, e) for e in EMAILS)
    assert materialized_metadata(result)["pii_key_source"].value == "secret"


def test_secret_binary_by_arn(aws_env: str) -> None:
    key = secrets.token_bytes(100)  # longer than SHA-256's block: hashed first, as hmac does
    arn = create_secret("lake/pii-binary", SecretBinary=key)
    assert fetch_secret(arn) == key
    con = duckdb.connect()
    install_key(con, PIIKey(fetch_secret(arn), "secret"))
    sql = f"SELECT {lake.cleaning.masking._hmac_sql(sql_string('a@example.com'))}"
    assert con.execute(sql).fetchone()[0] == hmac.new(key, b"a@example.com", "sha256").hexdigest()


def test_precedence_env_then_secret_then_development_key(aws_env: str) -> None:
    create_secret("lake/pii-precedence", SecretString="from-the-secret")
    s3, local = ("s3://b/landing", "s3://b/lake"), ("file:///tmp/landing", "file:///tmp/lake")
    both = resolve_key(*s3, env_key="from-the-env", secret_id="lake/pii-precedence")
    assert (both.secret, both.source) == (b"from-the-env", "env")
    resource = PIIKeyResource(key="from-the-env", secret_id="lake/pii-precedence")
    assert resource.key_for(*s3).secret == b"from-the-env"
    secret = resolve_key(*s3, secret_id="lake/pii-precedence")
    assert (secret.secret, secret.source) == (b"from-the-secret", "secret")
    development = resolve_key(*local)
    assert (development.secret, development.source) == (DEV_KEY.encode(), "development")
    with pytest.raises(MissingPIIKey):
        resolve_key(local[0], s3[1])


def test_an_s3_run_without_a_key_refuses_to_clean(
    s3_bucket: str, tmp_path: Path, monkeypatch, instance
) -> None:
    monkeypatch.delenv("PII_HASH_KEY")
    result = clean(s3_bucket, tmp_path, instance)
    assert not result.success
    assert "no PII key is set" in step_failure(result).message
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]


def test_a_missing_secret_fails_clearly_without_retry(
    s3_bucket: str, tmp_path: Path, monkeypatch, instance
) -> None:
    monkeypatch.delenv("PII_HASH_KEY")
    land_records(s3_bucket)
    result = clean(s3_bucket, tmp_path, instance, secret_id="lake/no-such-secret")
    assert not result.success
    message = step_failure(result).message
    assert "'lake/no-such-secret' does not exist" in message
    assert "ResourceNotFoundException" in message
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert cleaned_emails(s3_bucket) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [({"SecretString": " \n"}, "is empty"), ({}, "has no value (no AWSCURRENT version)")],
    ids=["blank", "no-value"],
)
def test_an_empty_secret_is_refused(aws_env: str, value: dict, expected: str) -> None:
    name = f"lake/pii-empty-{secrets.token_hex(4)}"
    create_secret(name, **value)
    with pytest.raises(SecretUnavailable, match=re.escape(expected)) as raised:
        fetch_secret(name)
    assert not raised.value.retryable
    with pytest.raises(Failure) as failure:
        PIIKeyResource(secret_id=name).key_for("s3://b/lake")
    assert expected in failure.value.description
    assert failure.value.allow_retries is False


def test_a_denied_secret_fails_without_retry(aws_env: str, monkeypatch) -> None:
    """An identity whose policy lets it read S3 but not the secret (moto checks IAM)."""
    key = canary_key()
    create_secret("lake/pii-denied", SecretString=key)
    iam = boto3.client("iam")
    user = f"cleaner-{secrets.token_hex(4)}"
    iam.create_user(UserName=user)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}  # fmt: skip
    iam.put_user_policy(UserName=user, PolicyName="s3-only", PolicyDocument=json.dumps(policy))
    access = iam.create_access_key(UserName=user)["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", access["SecretAccessKey"])
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # it keeps the credentials it found
    with enable_iam_authentication():
        with pytest.raises(SecretUnavailable) as raised:
            fetch_secret("lake/pii-denied")
        with pytest.raises(Failure) as failure:
            PIIKeyResource(secret_id="lake/pii-denied").key_for("s3://b/lake")
    assert "may not be read by this identity (secretsmanager:GetSecretValue)" in str(raised.value)
    assert not raised.value.retryable
    assert failure.value.allow_retries is False
    assert found_in([str(raised.value), failure.value.description], key) == []


def test_a_service_error_may_be_retried(aws_env: str) -> None:
    client = secrets_client()
    with Stubber(client) as stub:
        stub.add_client_error("get_secret_value", "InternalServiceError", http_status_code=500)
        with pytest.raises(SecretUnavailable, match="InternalServiceError") as raised:
            fetch_secret("lake/pii", client=client)
    assert raised.value.retryable


def test_masking_without_an_installed_key_fails_instead_of_hashing_with_none() -> None:
    spec = load_streams()[STREAM]
    columns = [Column("email", ("email",), "string", "hash")]
    con = duckdb.connect()
    con.execute("CREATE TABLE src AS SELECT 'x' AS v")
    with pytest.raises(duckdb.Error, match="no PII key on this DuckDB connection"):
        con.execute(masking_sql("src", columns, spec)).fetchall()
    install_key(con, PIIKey(b"k", "test"))
    (row,) = con.execute(f"SELECT email FROM ({masking_sql('src', columns, spec)})").fetchall()
    assert row == (hmac_hex("k", "x"),)


# --- the key never shows ------------------------------------------------------------------


def test_no_key_in_logs_events_or_errors(
    s3_bucket: str, tmp_path: Path, monkeypatch, caplog, capfd
) -> None:
    """Successful and failing runs with the key from the env and from the secret: no form
    of the key in any Dagster event, the stored event log, captured output, errors or the
    bucket's objects."""
    monkeypatch.setattr(assets.hourly, "ASSET_RETRY_POLICY", RetryPolicy(max_retries=1))
    env_key, secret_key = canary_key(), canary_key()
    create_secret("lake/pii-scan", SecretString=secret_key)
    caplog.set_level(logging.DEBUG)  # botocore's too: it logs response bodies at DEBUG
    caplog.clear()  # (CreateSecret's request above holds the key: the test's, not the code's)
    land_records(s3_bucket, "first")
    texts: list[str | bytes] = []
    outcomes = []

    def run(secret_id: str | None, name: str) -> None:
        with disk_instance(tmp_path / name) as instance:
            result = clean(s3_bucket, tmp_path, instance, secret_id=secret_id)
            texts.extend(run_texts(result, instance))
        texts.extend(folder_bytes(tmp_path / name))
        outcomes.append(result.success)

    monkeypatch.setenv("PII_HASH_KEY", env_key)
    run(None, "env-ok")
    assert cleaned_emails(s3_bucket) == sorted(hmac_hex(env_key, e) for e in EMAILS)
    monkeypatch.delenv("PII_HASH_KEY")
    land_records(s3_bucket, "second", minute=6)  # new records: this run hashes them
    run("lake/pii-scan", "secret-ok")
    assert cleaned_emails(s3_bucket) == sorted(
        [hmac_hex(env_key, e) for e in EMAILS] + [hmac_hex(secret_key, e) for e in EMAILS]
    )
    run("lake/no-such-secret", "secret-missing")
    # a DuckDB error inside cleaning, in the statement that hashes (its text is echoed)
    original = lake.cleaning.masking._hmac_sql
    monkeypatch.setattr(lake.cleaning.masking, "_hmac_sql", lambda v: original(v) + " +* ")
    land_records(s3_bucket, "third", minute=7)
    run("lake/pii-scan", "duckdb-error-secret")
    monkeypatch.setenv("PII_HASH_KEY", env_key)
    run(None, "duckdb-error-env")
    assert outcomes == [True, True, False, False, False]
    assert any("Parser Error" in t for t in texts if isinstance(t, str))  # the error was seen

    texts += [caplog.text, *[r.getMessage() for r in caplog.records]]
    out, err = capfd.readouterr()
    texts += [out, err, *bucket_bytes(s3_bucket)]
    assert found_in(texts, env_key) == []
    assert found_in(texts, secret_key) == []


def test_the_scan_finds_a_leaked_key(tmp_path: Path, caplog, capfd) -> None:
    """The scanner itself: a key logged on purpose, and the padded key pasted into SQL as
    the code once did, are both found."""
    key = canary_key()
    logging.getLogger("leaky").warning("using key %s", base64.b64encode(key.encode()).decode())
    print(f"ipad {PIIKey(key.encode(), 'test').pads()[0].hex()}")
    assert "key base64" in found_in([caplog.text], key)
    assert found_in([capfd.readouterr().out], key) == ["ipad hex"]

    opad = PIIKey(key.encode(), "test").pads()[1].hex()
    with pytest.raises(duckdb.Error) as raised:  # the pads pasted into SQL, as the code once did
        duckdb.connect().execute(f"SELECT CAST('{opad}' AS INTEGER)")
    text = "".join(traceback.format_exception(raised.value))
    assert "opad hex" in found_in([text], key)
    assert "opad hex" in found_in([f"LINE 1: ...{opad[30:70]}') AS"], key)  # a piece of it
    assert found_in(["nothing here", "5c" * 64, "36" * 64], key) == []
