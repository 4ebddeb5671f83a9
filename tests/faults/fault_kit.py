"""Fault injection kit: an HTTP proxy in front of moto's S3, and a lake of known records.

`FaultProxy` forwards every request to moto's ThreadedMotoServer and, when its plan says
so, answers 503 or 500 itself, drops the connection without an answer, or forwards and
then cuts the response body off halfway (the connection closes with bytes still owed).
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import socket
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import boto3
from botocore.config import Config

from lake.firehose import object_key
from lake.storage import S3Storage, Storage

Plan = Callable[[str, str, int], str | None]  # (method, path, n-th such request) -> fault
FAULTS = ("503", "500", "drop", "truncate")
STREAM = "robot_telemetry"
HOUR = datetime(2026, 11, 21, 8, tzinfo=UTC)


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        parsed = urlparse(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.plan: Plan = lambda method, path, n: None
        self.injected: Counter[str] = Counter()
        self._seen: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _any(self) -> None:
                proxy.handle(self)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def client(self) -> object:
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            config=Config(retries={"max_attempts": 10, "mode": "standard"}),
        )

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        body = _read_body(req)
        path = req.path.split("?", 1)[0]
        with self._lock:
            self._seen[(req.command, path)] += 1
            fault = self.plan(req.command, req.path, self._seen[(req.command, path)])
            if fault:
                self.injected[fault] += 1
        if fault in ("503", "500"):
            code = "ServiceUnavailable" if fault == "503" else "InternalError"
            payload = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
            req.send_response(int(fault))
            req.send_header("Content-Type", "application/xml")
            req.send_header("Content-Length", str(len(payload)))
            req.end_headers()
            req.wfile.write(payload)
            return
        if fault == "drop":
            _hang_up(req)
            return
        status, headers, data = self._forward(req, body)
        req.send_response(status)
        for name, value in headers:
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                req.send_header(name, value)
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        if req.command == "HEAD":
            return
        if fault == "truncate" and len(data) > 1:
            req.wfile.write(data[: len(data) // 2])
            req.wfile.flush()
            _hang_up(req)
            return
        req.wfile.write(data)

    def _forward(self, req: BaseHTTPRequestHandler, body: bytes) -> tuple[int, list, bytes]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        headers = {k: v for k, v in req.headers.items() if k.lower() != "transfer-encoding"}
        headers["Content-Length"] = str(len(body))
        conn.request(req.command, req.path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, response.getheaders(), data


def _read_body(req: BaseHTTPRequestHandler) -> bytes:
    if req.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while size := int(req.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(req.rfile.read(size))
            req.rfile.readline()
        while req.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        return b"".join(chunks)
    return req.rfile.read(int(req.headers.get("Content-Length") or 0))


def _hang_up(req: BaseHTTPRequestHandler) -> None:
    req.close_connection = True
    with contextlib.suppress(OSError):
        req.connection.shutdown(socket.SHUT_RDWR)


def records_for(n_objects: int, per_object: int) -> list[list[dict]]:
    """Records of one hour: ids repeat across objects (at-least-once delivery) and one
    record an object has a timestamp that cannot be parsed (quarantined)."""
    objects = []
    for o in range(n_objects):
        rows = []
        for r in range(per_object):
            rid = o * per_object + r
            if r % 5 == 4:
                rid -= per_object  # a redelivery of an earlier object's record
            ts = HOUR + timedelta(minutes=rid % 60, seconds=r)
            rows.append({"event_id": f"e{rid}", "ts": ts.isoformat(), "robot_id": "R1"})
        rows.append({"event_id": f"bad{o}", "ts": "not a time", "robot_id": "R1"})
        objects.append(rows)
    return objects


def land(storage: Storage, objects: list[list[dict]], hour: datetime = HOUR) -> list[str]:
    keys = []
    for o, rows in enumerate(objects):
        key = object_key(STREAM, hour + timedelta(minutes=o), object_id=f"obj{o:03d}")
        storage.write(key, gzip.compress("".join(json.dumps(r) for r in rows).encode(), mtime=0))
        keys.append(key)
    return keys


def expected_ids(objects: list[list[dict]]) -> set[str]:
    return {r["event_id"] for rows in objects for r in rows if r["ts"] != "not a time"}


def s3_storage_via(client: object, bucket: str, prefix: str) -> S3Storage:
    return S3Storage(bucket, prefix, client=client)


def read_parquet_rows(lake: Storage, keys: list[str]) -> list[dict]:
    import io

    import pyarrow.parquet as pq

    rows: list[dict] = []
    for key in keys:
        rows += pq.read_table(io.BytesIO(lake.read(key))).to_pylist()
    return rows


def assert_all_accounted(lake: Storage, landed: list[str], objects: list[list[dict]]) -> None:
    """Every landed object has a committed ledger entry whose counts balance, the
    committed cleaned rows are the distinct good records (each once), and the bad records
    are in quarantine."""
    from lake.committed import CommittedFiles

    manifests = [json.loads(lake.read(info.key)) for info in lake.list(f"_state/cleaned/{STREAM}/")]
    assert sorted(m["source_key"] for m in manifests) == sorted(landed)
    for m in manifests:
        accounted = m["records_cleaned"] + m["records_quarantined"] + m["duplicates_dropped"]
        assert m["records_in"] == accounted, m
    assert sum(m["records_in"] for m in manifests) == sum(len(rows) for rows in objects)
    committed = CommittedFiles(lake, STREAM)
    cleaned = read_parquet_rows(lake, committed.of_days("cleaned", None))
    ids = [r["event_id"] for r in cleaned]
    assert len(ids) == len(set(ids)) == len(expected_ids(objects))
    assert set(ids) == expected_ids(objects)
    quarantined = read_parquet_rows(lake, committed.of_days("quarantine", None))
    assert sorted(r["source_key"] for r in quarantined) == sorted(landed)  # one bad each
