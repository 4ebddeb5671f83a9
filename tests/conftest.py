"""Shared fixtures: local lake folders, Dagster resources, and a real S3 endpoint on loopback."""

from __future__ import annotations

import gzip
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from lake.firehose import object_key
from lake.settings import DEFAULTS
from lake.storage import LocalStorage, Storage
from tests import aws_calls
from tests import postgres_server as postgres

# Without it the partitions would start on the demo seed's day when `make dev` has seeded
# this checkout's data/ (orchestration/partitions.py); tests use fixed days from 2026.
os.environ.setdefault("PIPELINE_START_DATE", "2026-01-01")


def pytest_configure(config: pytest.Config) -> None:
    """Record the pipeline's AWS calls and hold them against docs/security.md."""
    aws_calls.install()
    config.pluginmanager.register(aws_calls, "aws-calls")


# The files that take longest (the CI log's --durations: a real daemon, `dagster dev`, a
# day of micro-batches), longest first. `make test` runs a file per pytest-xdist worker in
# collection order (--no-loadscope-reorder), so these start first and the short files fill
# in around them instead of one of these starting last and running alone. A file not listed
# keeps its place after them; a stale list costs time only.
LONG_FILES = (
    "tests/dagster/test_warm_launcher.py",
    "tests/integration/test_marts_golden.py",
    "tests/dagster/test_warm_launcher_preload.py",
    "tests/e2e/test_dagster_dev.py",
    "tests/faults/test_kill9.py",
    "tests/e2e/test_postgres_storage.py",
    "tests/dagster/test_warm_launcher_spawn.py",
    "tests/e2e/test_operator_console.py",
    "tests/dagster/test_operator_setup.py",
    "tests/integration/test_sqs_long_polling.py",
    "tests/dagster/test_pools.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """LONG_FILES' tests first, in its order; the rest as collected (a stable sort)."""
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(LONG_FILES)))


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    """Bytes parameters named by their length: their text would hold a gzip header's mtime,
    which differs between pytest-xdist workers collecting in different seconds, and xdist
    refuses a run whose workers collected different test ids."""
    if isinstance(val, bytes | bytearray):
        return f"{argname}{len(val)}B"
    return None


@pytest.fixture
def landing(tmp_path: Path) -> LocalStorage:
    """A landing folder (Firehose's layout) for core tests."""
    return LocalStorage(tmp_path / "landing")


@pytest.fixture
def lake(tmp_path: Path) -> LocalStorage:
    """A lake folder for core tests."""
    return LocalStorage(tmp_path / "lake")


@pytest.fixture
def local_lake(tmp_path: Path) -> dict[str, object]:
    """Landing and lake folders plus the Dagster resources that point at them."""
    from orchestration.resources import resources_from_env  # tests/unit runs without Dagster

    landing, lake = tmp_path / "landing", tmp_path / "lake"
    warehouse = tmp_path / "warehouse.duckdb"
    settings = replace(
        DEFAULTS,
        landing_uri=landing.as_uri(),
        lake_uri=lake.as_uri(),
        warehouse_path=str(warehouse),
    )
    return {
        "landing": LocalStorage(landing),
        "lake": LocalStorage(lake),
        "warehouse_path": str(warehouse),
        "settings": settings,
        "resources": resources_from_env(settings),  # the embedded defaults: AWS services off
    }


def _write_concatenated(
    storage: Storage, stream: str, written_at: datetime, records: list[dict], object_id: str
) -> str:
    key = object_key(stream, written_at, object_id=object_id)
    storage.write(key, gzip.compress("".join(json.dumps(r) for r in records).encode(), mtime=0))
    return key


@pytest.fixture
def write_concatenated():
    """write(storage, stream, written_at, records, object_id) -> key: JSON back to back, gzip,
    the way Firehose delivers by default."""
    return _write_concatenated


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 as a real HTTP server on 127.0.0.1 (an OS-chosen port)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """boto3 pointed at moto through AWS_ENDPOINT_URL, as at any AWS-compatible endpoint."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("PII_HASH_KEY", "s3-tests-pii-key")  # cleaning on S3 requires one
    return moto_endpoint


@pytest.fixture
def s3_bucket(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh bucket on moto's S3 over HTTP."""
    name = f"lake-test-{uuid.uuid4().hex[:16]}"  # id() of an object is reused once it is freed
    boto3.client("s3").create_bucket(Bucket=name)
    yield name


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[postgres.Server]:
    """A real PostgreSQL server (Debian's package) on a free port of 127.0.0.1, for the
    session. Missing and not installable: a failure in CI (CI set), a skip elsewhere."""
    from orchestration.dev_server import free_port  # tests/unit runs without Dagster

    try:
        server = postgres.start(free_port())
    except postgres.Unavailable as missing:
        if postgres.in_ci(os.environ):
            pytest.fail(f"CI needs PostgreSQL: {missing}", pytrace=False)
        pytest.skip(str(missing))
    yield server
    postgres.stop(server)


@pytest.fixture
def postgres_database(postgres_server: postgres.Server) -> str:
    """A new empty database on the session's server: its URL."""
    return postgres.create_database(postgres_server, f"lake_{uuid.uuid4().hex[:12]}")
