"""moto's S3 over HTTP with a log of every request it serves, by operation and key.

Counted at the server, so boto3's requests and pyarrow's (pyiceberg's file IO, which
botocore's event hooks never see) alike. Used by tests/integration/test_s3_call_budget.py
and bench/s3_calls_bench.py.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote


class RequestLog:
    """Requests seen by the server, each with the phase the driver was in."""

    def __init__(self) -> None:
        self.phase = "setup"
        self.rows: list[tuple[str, str, str]] = []  # (phase, operation, prefix class)
        self.raw: list[tuple[str, str, str]] = []  # (phase, operation, key)
        self._lock = threading.Lock()

    def wrap(self, app: Callable) -> Callable:
        def counting(environ: dict[str, Any], start_response: Callable) -> Any:
            operation, key = classify(environ)
            with self._lock:
                self.rows.append((self.phase, operation, key_class(key)))
                self.raw.append((self.phase, operation, key))
            return app(environ, start_response)

        return counting

    def of(self, phase: str) -> list[tuple[str, str]]:
        """(operation, prefix class) of each request made in `phase`."""
        with self._lock:
            return [(op, prefix) for p, op, prefix in self.rows if p == phase]


def classify(environ: dict[str, Any]) -> tuple[str, str]:
    """(operation, key or listed prefix without the bucket) of a path-style S3 request."""
    method = environ["REQUEST_METHOD"]
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.split(".")[-1], ""
    path = unquote(environ.get("PATH_INFO", "")).lstrip("/")
    bucket, _, key = path.partition("/")
    if method == "GET" and not key:
        kind = "ListObjectsV2" if query.get("list-type") == ["2"] else "ListBucket(other)"
        return kind, query.get("prefix", [""])[0]
    if method == "GET":
        return ("GetObject(range)" if environ.get("HTTP_RANGE") else "GetObject"), key
    if method == "PUT":
        if "partNumber" in query:
            return "UploadPart", key
        if environ.get("HTTP_IF_MATCH"):
            return "PutObject(If-Match)", key
        if environ.get("HTTP_IF_NONE_MATCH"):
            return "PutObject(If-None-Match)", key
        return ("PutObject" if key else "CreateBucket"), key
    if method == "HEAD":
        return ("HeadObject" if key else "HeadBucket"), key
    if method == "POST" and "delete" in query:
        return "DeleteObjects", key
    if method == "POST" and "uploads" in query:
        return "CreateMultipartUpload", key
    if method == "POST" and "uploadId" in query:
        return "CompleteMultipartUpload", key
    if method == "DELETE":
        return ("DeleteObject" if key else "DeleteBucket"), key
    return method, key


_HEX = re.compile(r"[0-9a-f]{8,}(-[0-9a-f]{4,})*")
_DIGITS = re.compile(r"\d+")


def key_class(key: str) -> str:
    """The key with what varies between hours and objects masked: uuid and hash runs as
    *, digit runs as #."""
    return _DIGITS.sub("#", _HEX.sub("*", key))


@contextmanager
def moto_server(log: RequestLog) -> Iterator[str]:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = log.wrap(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()


def aws_variables(endpoint: str) -> dict[str, str]:
    """boto3's (and pyarrow's) environment for the server at `endpoint`."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def bench_bucket(endpoint: str, pii_key: str) -> str:
    """A new bucket on the server at `endpoint`, this process's environment pointed at it
    (with a PII key, and partitions from two days before the current hour)."""
    import boto3

    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    os.environ.update(
        aws_variables(endpoint),
        PII_HASH_KEY=pii_key,
        PIPELINE_START_DATE=f"{hour - timedelta(days=2):%Y-%m-%d}",
    )
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return bucket
