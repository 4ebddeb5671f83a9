"""The storage contract on S3, over moto's HTTP endpoint on 127.0.0.1."""

import pytest

from lake.storage import ObjectNotFound, S3Storage, UnsafeKeyError, open_storage

pytestmark = pytest.mark.s3


def test_s3_storage_lists_in_key_order_with_prefix_and_start_after(s3_bucket: str) -> None:
    storage = open_storage(f"s3://{s3_bucket}/root/prefix")
    assert isinstance(storage, S3Storage)
    keys = ["b/2", "a/1", "a.txt", "a/0", "c"]
    for key in keys:
        storage.write(key, key.encode())

    assert [o.key for o in storage.list()] == sorted(keys)
    assert [o.key for o in storage.list("a/")] == ["a/0", "a/1"]
    assert [o.key for o in storage.list(start_after="a/0")] == ["a/1", "b/2", "c"]
    assert storage.read("b/2") == b"b/2"
    assert [o.size for o in storage.list("c")] == [1]


def test_s3_storage_delete_exists_and_missing_keys(s3_bucket: str) -> None:
    storage = open_storage(f"s3://{s3_bucket}")
    storage.write("x/y.json", b"{}")
    assert storage.exists("x/y.json")
    storage.delete("x/y.json")
    assert not storage.exists("x/y.json")
    with pytest.raises(ObjectNotFound):
        storage.read("x/y.json")
    with pytest.raises(ObjectNotFound):
        storage.delete("x/y.json")


@pytest.mark.parametrize("bad", ["../escape", "/abs", "a/../../b", "a//b"])
def test_s3_storage_refuses_keys_that_escape_the_prefix(s3_bucket: str, bad: str) -> None:
    storage = open_storage(f"s3://{s3_bucket}/root")
    with pytest.raises(UnsafeKeyError):
        storage.write(bad, b"x")


def test_s3_listing_pages_past_1000_keys(s3_bucket: str) -> None:
    storage = open_storage(f"s3://{s3_bucket}/many")
    client = storage.client
    for i in range(1105):  # straight through boto3: the paginator is what is under test
        client.put_object(Bucket=s3_bucket, Key=f"many/k/{i:05d}", Body=b"")
    assert len(list(storage.list("k/"))) == 1105
    assert len(list(storage.list("k/", start_after="k/01000"))) == 104


def test_s3_storage_streams_and_reads_ranges(s3_bucket: str) -> None:
    storage = open_storage(f"s3://{s3_bucket}/r")
    payload = bytes(range(256)) * 100
    storage.write("blob", payload)
    with storage.open("blob") as stream:
        assert stream.read(10) == payload[:10]
    assert storage.read_range("blob", 250, 12) == payload[250:262]
    assert storage.read_range("blob", len(payload) - 8, 8) == payload[-8:]
    with pytest.raises(ObjectNotFound):
        storage.open("missing")
