"""A process's shared boto3 clients follow boto3's settings (lake.s3_clients)."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

from lake import s3_clients

CONFIG = {"retries": {"max_attempts": 10, "mode": "adaptive"}}


@pytest.fixture(autouse=True)
def aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "first-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "first-secret")
    s3_clients.clear()


def access_key(client: Any) -> str:
    return client._request_signer._credentials.access_key


def test_one_client_for_the_same_settings_and_environment() -> None:
    first = s3_clients.shared_client("s3", config=CONFIG)
    assert s3_clients.shared_client("s3", config=CONFIG) is first
    assert first.meta.endpoint_url == "http://127.0.0.1:9"
    assert first.meta.region_name == "eu-west-1"
    # botocore counts the first attempt too
    assert first.meta.config.retries == {"total_max_attempts": 11, "mode": "adaptive"}
    assert access_key(first) == "first-key"
    other = s3_clients.shared_client("s3", config={"retries": {"max_attempts": 3}})
    assert other is not first and other.meta.config.retries["total_max_attempts"] == 4


def test_a_changed_endpoint_region_or_credentials_makes_a_new_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = s3_clients.shared_client("s3")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:10")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "second-key")
    second = s3_clients.shared_client("s3")
    assert second is not first
    assert second.meta.endpoint_url == "http://127.0.0.1:10"
    assert second.meta.region_name == "us-west-2"
    assert access_key(second) == "second-key"
    assert access_key(first) == "first-key"  # a client kept elsewhere is left as it was


def test_a_client_is_made_afresh_after_its_age(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(s3_clients.time, "monotonic", lambda: now[0])
    first = s3_clients.shared_client("s3")
    now[0] += s3_clients.MAX_AGE_S - 1
    assert s3_clients.shared_client("s3") is first
    now[0] += 2
    assert s3_clients.shared_client("s3") is not first


def test_clients_of_past_environments_are_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3_clients, "MAX_CLIENTS", 3)
    made = []
    for port in range(1, 6):
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        made.append(s3_clients.shared_client("s3"))
    assert len(s3_clients._CLIENTS) == 3
    assert s3_clients.shared_client("s3") is made[-1]  # the newest are kept


def test_threads_asking_at_once_share_one_client() -> None:
    got: list[Any] = []
    start = threading.Barrier(6)

    def ask() -> None:
        start.wait()
        got.append(s3_clients.shared_client("s3", config=CONFIG))

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 6 and all(c is got[0] for c in got)


def test_warm_parses_the_models_once_for_later_sessions(monkeypatch: pytest.MonkeyPatch) -> None:
    import botocore.loaders

    s3_clients.warm("s3")
    parsed: list[str] = []  # JSON files read and parsed
    real = botocore.loaders.JSONFileLoader.load_file

    def counted(file_loader: Any, path: str) -> Any:
        parsed.append(path)
        return real(file_loader, path)

    monkeypatch.setattr(botocore.loaders.JSONFileLoader, "load_file", counted)
    client = s3_clients.shared_client("s3")
    assert client.meta.service_model.service_name == "s3"
    assert parsed == []


def test_a_forked_child_makes_its_own_client() -> None:
    parent = s3_clients.shared_client("s3")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a parent's client may hold its pooled connections
        child = s3_clients.shared_client("s3")
        os.write(write, b"own" if child is not parent else b"parent's")
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 16) == b"own"
    assert s3_clients.shared_client("s3") is parent
