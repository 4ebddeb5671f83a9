"""One small storage interface over a local folder or an S3 prefix.

Keys are always relative, '/'-separated and listed in S3's order (byte order of the
UTF-8 key), so a `start_after` cursor means the same thing on both backends.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import unquote, urlparse

TMP_SUFFIX = ".inflight"


class UnsafeKeyError(ValueError):
    """A key that would escape the storage root."""


class ObjectNotFound(KeyError):
    """Reading or deleting a key that does not exist."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime


def check_key(key: str, *, allow_prefix: bool = False) -> str:
    """Return `key` if it stays inside its root; raise UnsafeKeyError otherwise.

    Refused: empty keys, absolute paths, backslashes, NUL, and `.`/`..`/empty path parts.
    A prefix (for listing) may be empty and may end with '/'.
    """
    if not isinstance(key, str):
        raise UnsafeKeyError(f"storage key must be a string, got {type(key).__name__}")
    if key == "" and allow_prefix:
        return key
    if key == "":
        raise UnsafeKeyError("storage key is empty")
    if key.startswith("/"):
        raise UnsafeKeyError(f"storage key {key!r} is absolute; keys are relative to the root")
    if "\\" in key or "\x00" in key:
        raise UnsafeKeyError(f"storage key {key!r} contains a backslash or NUL")
    parts = key.split("/")
    if allow_prefix and parts[-1] == "":
        parts = parts[:-1]
    for part in parts:
        if part in ("", ".", ".."):
            raise UnsafeKeyError(
                f"storage key {key!r} has a {part or 'empty'!r} path part that could escape the root"
            )
    return key


def check_s3_read_key(key: str) -> str:
    """Return `key` if it can name an object to GET on S3; raise UnsafeKeyError otherwise.

    An S3 key is an exact name, not a path (botocore sends `a//b`, `a/./b` and `a/../b`
    as they are), so a GET by a listed key cannot leave the prefix. Only writes and local
    paths need check_key.
    """
    if not isinstance(key, str) or key == "" or "\x00" in key:
        raise UnsafeKeyError(f"S3 object key {key!r} is empty or not a string or has a NUL")
    return key


class Storage(Protocol):
    uri: str

    def list(self, prefix: str = "", start_after: str | None = None) -> Iterator[ObjectInfo]: ...
    def read(self, key: str) -> bytes: ...
    def open(self, key: str) -> BinaryIO: ...
    def read_range(self, key: str, start: int, length: int) -> bytes: ...
    def write(self, key: str, data: bytes) -> None: ...
    def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def uri_of(self, key: str) -> str: ...


class LocalStorage:
    """A folder on disk. Writes go to a hidden temp file first, then an atomic rename."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.uri = self.root.as_uri()

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def uri_of(self, key: str) -> str:
        return self.path(key).as_uri()

    def list(self, prefix: str = "", start_after: str | None = None) -> Iterator[ObjectInfo]:
        check_key(prefix, allow_prefix=True)
        base = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
        start_dir = self.root / base if base else self.root
        if not start_dir.is_dir():
            return
        yield from self._walk(start_dir, base, prefix, start_after)

    def _walk(
        self, folder: Path, folder_key: str, prefix: str, start_after: str | None
    ) -> Iterator[ObjectInfo]:
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return
        # Sorting a folder's entries by "name/" for sub-folders gives S3's global key order.
        keyed = sorted(
            (folder_key + e.name + ("/" if e.is_dir(follow_symlinks=False) else ""), e)
            for e in entries
        )
        for key, entry in keyed:
            if entry.is_dir(follow_symlinks=False):
                if not (key.startswith(prefix) or prefix.startswith(key)):
                    continue
                if start_after and start_after > key and not start_after.startswith(key):
                    continue  # every key below this folder sorts before start_after
                yield from self._walk(Path(entry.path), key, prefix, start_after)
                continue
            if entry.name.endswith(TMP_SUFFIX) or not key.startswith(prefix):
                continue
            if start_after is not None and key <= start_after:
                continue
            stat = entry.stat()
            yield ObjectInfo(key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))

    def read(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{self.uri_of(key)} does not exist") from exc

    def open(self, key: str) -> BinaryIO:
        """A stream over the object: readers that stop early (sampling) pay only for what they read."""
        try:
            return open(self.path(key), "rb")  # noqa: SIM115 - the caller closes it
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{self.uri_of(key)} does not exist") from exc

    def read_range(self, key: str, start: int, length: int) -> bytes:
        with self.open(key) as fh:
            fh.seek(start)
            return fh.read(length)

    def write(self, key: str, data: bytes) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}{TMP_SUFFIX}")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        try:
            self.path(key).unlink()
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{self.uri_of(key)} does not exist") from exc

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()


class S3Storage:
    """A bucket and prefix, through boto3 (so AWS_ENDPOINT_URL and the credential chain apply)."""

    def __init__(self, bucket: str, prefix: str = "", client: Any | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.client = client if client is not None else default_s3_client()

    def _full(self, key: str) -> str:
        return self.prefix + key

    def key_of(self, bucket: str, full_key: str) -> str | None:
        """The storage key of an object named by bucket and full key (an S3 event's), or
        None when it is outside this storage."""
        if bucket != self.bucket or not full_key.startswith(self.prefix):
            return None
        return full_key[len(self.prefix) :]

    def uri_of(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._full(check_key(key))}"

    def list(self, prefix: str = "", start_after: str | None = None) -> Iterator[ObjectInfo]:
        check_key(prefix, allow_prefix=True)
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._full(prefix)}
        if start_after:
            kwargs["StartAfter"] = self._full(start_after)
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(**kwargs):
            for obj in page.get("Contents", []):
                yield ObjectInfo(obj["Key"][len(self.prefix) :], obj["Size"], obj["LastModified"])

    def _body(self, key: str, **extra: Any) -> Any:
        """The GET's streaming body; a missing key is ObjectNotFound."""
        try:
            return self.client.get_object(
                Bucket=self.bucket, Key=self._full(check_s3_read_key(key)), **extra
            )["Body"]
        except self.client.exceptions.NoSuchKey as exc:
            raise ObjectNotFound(f"s3://{self.bucket}/{self._full(key)} does not exist") from exc

    def read(self, key: str) -> bytes:
        return self._body(key).read()

    def open(self, key: str) -> BinaryIO:
        """Bytes arrive as they are read; closing early drops the rest."""
        return self._body(key)

    def read_range(self, key: str, start: int, length: int) -> bytes:
        if length <= 0:
            return b""
        return self._body(key, Range=f"bytes={start}-{start + length - 1}").read()

    def write(self, key: str, data: bytes) -> None:
        # A PUT is atomic on S3: readers see the old object or the whole new one.
        self.client.put_object(Bucket=self.bucket, Key=self._full(check_key(key)), Body=data)

    def delete(self, key: str) -> None:
        if not self.exists(key):
            raise ObjectNotFound(f"{self.uri_of(key)} does not exist")
        self.client.delete_object(Bucket=self.bucket, Key=self._full(check_key(key)))

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._full(check_key(key)))
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True


def default_s3_client() -> Any:
    """A boto3 S3 client with adaptive retries; boto3 itself reads AWS_ENDPOINT_URL."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(retries={"max_attempts": 10, "mode": "adaptive"}))


def local_path(storage: Storage, key: str, scratch: Path) -> Path:
    """A local file with the object's bytes, for readers of local files only (DuckDB here
    has no S3 reader): the file itself on LocalStorage, else a copy at scratch/<key>
    (the key's folders kept, so `dt=` folders still read as Hive partitions)."""
    if isinstance(storage, LocalStorage):
        return storage.path(key)
    target = scratch / check_key(key)
    target.parent.mkdir(parents=True, exist_ok=True)
    with storage.open(key) as body, open(target, "wb") as out:
        shutil.copyfileobj(body, out, 1 << 20)
    return target


def open_storage(uri: str, s3_client: Any | None = None) -> Storage:
    """`file:///path` or a plain path gives LocalStorage; `s3://bucket/prefix` gives S3Storage."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"S3 URI {uri!r} has no bucket")
        return S3Storage(parsed.netloc, parsed.path, client=s3_client)
    if parsed.scheme == "file":
        return LocalStorage(unquote(parsed.path))
    if parsed.scheme == "":
        return LocalStorage(uri)
    raise ValueError(f"unsupported storage URI {uri!r}: use file:///path or s3://bucket/prefix")
