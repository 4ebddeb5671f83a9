"""One small storage interface over a local folder or an S3 prefix.

Keys are always relative, '/'-separated and listed in S3's order (byte order of the
UTF-8 key), so a `start_after` cursor means the same thing on both backends.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import hashlib
import os
import random
import shutil
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import unquote, urlparse

from lake.s3_retry import ResumingBody, resuming_reader
from lake.settings import DEFAULTS, SSE_MODES

TMP_SUFFIX = ".inflight"


class UnsafeKeyError(ValueError):
    """A key that would escape the storage root."""


class ObjectNotFound(KeyError):
    """Reading or deleting a key that does not exist."""


class PreconditionFailed(RuntimeError):
    """A conditional write lost: the object exists (create) or changed since it was read
    (replace). Re-read, re-merge and try again."""


class ConcurrentUpdateError(RuntimeError):
    """A compare-and-swap still lost after its bounded retries."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime
    # What changes when the object is rewritten under the same key: S3's ETag in a listing;
    # on a local folder mtime (ns) and size. "" when unknown (e.g. built by hand).
    etag: str = ""


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
    # writes worth running at once: an object store's round trips overlap, a local
    # folder's writes only compete for the same disk and cores
    writes_at_once: int

    def list(self, prefix: str = "", start_after: str | None = None) -> Iterator[ObjectInfo]: ...
    def read(self, key: str) -> bytes: ...
    def open(self, key: str) -> BinaryIO: ...
    def read_range(self, key: str, start: int, length: int, etag: str | None = None) -> bytes: ...
    def write(self, key: str, data: bytes) -> None: ...
    def read_versioned(self, key: str) -> tuple[bytes, str] | None: ...
    def write_if(self, key: str, data: bytes, expected: str | None) -> str: ...
    def delete(self, key: str) -> None: ...
    def discard(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def uri_of(self, key: str) -> str: ...


class LocalStorage:
    """A folder on disk. Writes go to a hidden temp file first, then an atomic rename."""

    writes_at_once = 1

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.uri = self.root.as_uri()

    def path(self, key: str) -> Path:
        """The key's path under the root; UnsafeKeyError when the key, or a symlink on
        its way (a link inside the folder pointing elsewhere), leads outside the root."""
        path = self.root / check_key(key)
        if self._through_symlink(key) and not path.resolve().is_relative_to(self.root):
            raise UnsafeKeyError(f"storage key {key!r} leads outside {self.root} (a symlink)")
        return path

    def _through_symlink(self, key: str) -> bool:
        """Whether a part of the key's path under the root is a symlink: one lstat a part,
        instead of Path.resolve's far slower walk for every key (a part that does not
        exist ends the walk: nothing under it exists either)."""
        path = str(self.root)
        for part in key.split("/"):
            path = f"{path}/{part}"
            try:
                if stat.S_ISLNK(os.lstat(path).st_mode):
                    return True
            except (FileNotFoundError, NotADirectoryError):
                return False
        return False

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
            names = sorted(os.listdir(folder))  # names only: no Python object per entry
        except (FileNotFoundError, NotADirectoryError):
            return
        within = prefix[len(folder_key) :] if prefix.startswith(folder_key) else ""
        keyed = []
        for name in _names_after(_names_within(names, within), _relative(start_after, folder_key)):
            try:
                is_dir = stat.S_ISDIR(os.lstat(os.path.join(folder, name)).st_mode)
            except FileNotFoundError:
                continue  # deleted since the folder was read
            # a sub-folder sorts as "name/": that gives S3's global key order
            keyed.append((folder_key + name + ("/" if is_dir else ""), name, is_dir))
        for key, name, is_dir in sorted(keyed):
            if is_dir:
                if not (key.startswith(prefix) or prefix.startswith(key)):
                    continue
                if start_after and start_after > key and not start_after.startswith(key):
                    continue  # every key below this folder sorts before start_after
                yield from self._walk(folder / name, key, prefix, start_after)
                continue
            if name.endswith(TMP_SUFFIX) or not key.startswith(prefix):
                continue
            if start_after is not None and key <= start_after:
                continue
            try:
                found = os.stat(folder / name)
            except FileNotFoundError:
                continue
            modified = datetime.fromtimestamp(found.st_mtime, UTC)
            yield ObjectInfo(
                key, found.st_size, modified, f"{found.st_mtime_ns:x}-{found.st_size:x}"
            )

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

    def read_range(self, key: str, start: int, length: int, etag: str | None = None) -> bytes:
        with self.open(key) as fh:
            fh.seek(start)
            return fh.read(length)

    def write(self, key: str, data: bytes) -> None:
        target = self.path(key)
        try:
            self._replace(target, data)
        except FileNotFoundError:  # its folder does not exist yet: make it only then
            target.parent.mkdir(parents=True, exist_ok=True)
            self._replace(target, data)

    @staticmethod
    def _replace(target: Path, data: bytes) -> None:
        # the name's start keeps it recognisable; cut so a 255-byte name still has room
        tmp = target.with_name(f".{target.name[:64]}.{uuid.uuid4().hex}{TMP_SUFFIX}")
        _write_new(tmp, data)
        try:
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and version tag (MD5 of the content, as S3's ETag of a
        single-part PUT), or None when it does not exist."""
        try:
            data = self.path(key).read_bytes()
        except FileNotFoundError:
            return None
        return data, _md5(data)

    def write_if(self, key: str, data: bytes, expected: str | None) -> str:
        """Write only if the object is absent (expected=None) or still has the version
        tag `expected`; PreconditionFailed otherwise. Returns the new version tag.

        The check and the rename happen under an exclusive flock on the object's folder,
        held by every conditional writer of that folder (threads or processes), so
        two writers can never both pass the check."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        folder = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(folder, fcntl.LOCK_EX)
            current = self.read_versioned(key)
            if expected is None and current is not None:
                raise PreconditionFailed(f"{self.uri_of(key)} already exists")
            if expected is not None and (current is None or current[1] != expected):
                raise PreconditionFailed(f"{self.uri_of(key)} changed since it was read")
            self._replace(target, data)
        finally:
            os.close(folder)  # releases the lock
        return _md5(data)

    def delete(self, key: str) -> None:
        try:
            self.path(key).unlink()
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{self.uri_of(key)} does not exist") from exc

    def discard(self, key: str) -> None:
        """Delete the object if it exists."""
        with contextlib.suppress(ObjectNotFound):
            self.delete(key)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()


class S3Storage:
    """A bucket and prefix, through boto3 (so AWS_ENDPOINT_URL and the credential chain apply)."""

    writes_at_once = 8  # a PUT is a round trip: a pass of small objects is bound by them

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        client: Any | None = None,
        put_args: dict[str, str] | None = None,
        read_attempts: int = DEFAULTS.s3_read_attempts,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.client = client if client is not None else default_s3_client()
        self.put_args = put_args or {}  # applied to every PUT (encryption_args)
        self.read_attempts = read_attempts

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
                yield ObjectInfo(
                    obj["Key"][len(self.prefix) :],
                    obj["Size"],
                    obj["LastModified"],
                    obj.get("ETag", ""),
                )

    def _get(self, key: str) -> Callable[..., dict[str, Any]]:
        """get_object for one key; a missing key is ObjectNotFound."""
        full = self._full(check_s3_read_key(key))

        def get(**extra: Any) -> dict[str, Any]:
            try:
                return self.client.get_object(Bucket=self.bucket, Key=full, **extra)
            except self.client.exceptions.NoSuchKey as exc:
                raise ObjectNotFound(f"s3://{self.bucket}/{full} does not exist") from exc

        return get

    # Reads resume after a connection cut mid-body (lake.s3_retry); botocore retries the rest.
    def read(self, key: str) -> bytes:
        with resuming_reader(self._get(key), attempts=self.read_attempts) as body:
            return body.read()

    def open(self, key: str) -> BinaryIO:
        """Bytes arrive as they are read; closing early drops the rest."""
        return resuming_reader(self._get(key), attempts=self.read_attempts)

    def read_range(self, key: str, start: int, length: int, etag: str | None = None) -> bytes:
        """Bytes start..start+length-1; with `etag`, of that version only (a newer one is
        PreconditionFailed, so reads of one file never mix two versions)."""
        if length <= 0:
            return b""
        with resuming_reader(
            self._get(key), start, start + length - 1, attempts=self.read_attempts, etag=etag
        ) as body:
            return body.read()

    def write(self, key: str, data: bytes) -> None:
        # A PUT is atomic on S3: readers see the old object or the whole new one.
        self.client.put_object(
            Bucket=self.bucket, Key=self._full(check_key(key)), Body=data, **self.put_args
        )

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and ETag, or None when it does not exist."""
        try:
            body = ResumingBody(self._get(key))
        except ObjectNotFound:
            return None
        with body:
            data = body.readall()
        return data, body.etag or ""

    def write_if(self, key: str, data: bytes, expected: str | None) -> str:
        """An S3 conditional PUT: `If-None-Match: *` (create) or `If-Match: <etag>`
        (replace); PreconditionFailed when S3 refuses it. Returns the new ETag."""
        condition = {"IfNoneMatch": "*"} if expected is None else {"IfMatch": expected}
        try:
            response = self.client.put_object(
                Bucket=self.bucket,
                Key=self._full(check_key(key)),
                Body=data,
                **condition,
                **self.put_args,
            )
        except self.client.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            # 412: the condition failed; 409: a concurrent conditional write won (retry);
            # NoSuchKey on If-Match: deleted since it was read
            deleted = expected is not None and error.get("Code") == "NoSuchKey"
            if deleted or error.get("Code") in _LOST_RACE or status in (409, 412):
                raise PreconditionFailed(f"{self.uri_of(key)}: {error.get('Code')}") from exc
            raise
        return response["ETag"]

    def delete(self, key: str) -> None:
        if not self.exists(key):
            raise ObjectNotFound(f"{self.uri_of(key)} does not exist")
        self.client.delete_object(Bucket=self.bucket, Key=self._full(check_key(key)))

    def discard(self, key: str) -> None:
        """Delete the object if it exists: one DELETE (S3 answers a missing key the same),
        where `delete` needs a HEAD first to tell."""
        self.client.delete_object(Bucket=self.bucket, Key=self._full(check_key(key)))

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._full(check_key(key)))
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True


_LOST_RACE = ("PreconditionFailed", "ConditionalRequestConflict")


def _relative(start_after: str | None, folder_key: str) -> str | None:
    """start_after seen from inside the folder `folder_key`: None when it sorts before
    every key of the folder (the folder's walk was skipped otherwise)."""
    if not start_after or not start_after.startswith(folder_key):
        return None
    return start_after[len(folder_key) :]


def _names_within(names: list[str], within: str) -> list[str]:
    """The sorted `names` of a folder that may hold keys starting with `within` (the
    listing's prefix seen from inside the folder): the names starting with it, or, when it
    reaches into a sub-folder, that name alone. The others are never stat'ed, so listing
    one hour's manifests in a stream's flat ledger folder costs that hour's entries, not a
    stat of every manifest the stream ever wrote."""
    if not within:
        return names
    head, slash, _ = within.partition("/")
    start = bisect.bisect_left(names, head if slash else within)
    if slash:
        return names[start : start + 1] if names[start : start + 1] == [head] else []
    end = start
    while end < len(names) and names[end].startswith(within):
        end += 1
    return names[start:end]


def _names_after(names: list[str], after: str | None) -> list[str]:
    """The sorted `names` of a folder whose key may sort after `after` (relative to the
    folder): names after it, and names it starts with (a sub-folder `n` is the key `n/`,
    which may sort after `after` or hold keys that do). The others are never stat'ed, so
    a listing from a cursor near a folder's end costs a sort of names in C, not a stat
    and Python objects an entry."""
    if after is None:
        return names
    below = [after[:end] for end in range(1, len(after) + 1)]
    found = [n for n in below if (i := bisect.bisect_left(names, n)) < len(names) and names[i] == n]
    return found + names[bisect.bisect_right(names, after) :]


def _write_new(path: Path, data: bytes) -> None:
    """A new file holding `data` (FileNotFoundError when its folder is missing), by bare
    system calls: a buffered Python file adds an fstat, an ioctl and an lseek to each."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
    except BaseException:
        path.unlink(missing_ok=True)  # a partly written file is not left behind
        raise


def _md5(data: bytes) -> str:
    return f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'


def compare_and_swap(
    storage: Storage,
    key: str,
    change: Callable[[bytes | None], bytes | None],
    attempts: int = 20,
) -> bytes | None:
    """Read `key`, let `change` compute its new content from the current one (None: the
    object does not exist), and write it only if nobody wrote in between; on a lost race,
    read and change again, a bounded number of times (ConcurrentUpdateError past it).
    `change` returning None writes nothing. Returns what was written (or None)."""
    for attempt in range(attempts):
        current = storage.read_versioned(key)
        new = change(current[0] if current else None)
        if new is None:
            return None
        try:
            storage.write_if(key, new, current[1] if current else None)
            return new
        except PreconditionFailed:
            time.sleep(random.uniform(0, 0.01 * 2 ** min(attempt, 6)))  # de-synchronise racers
    raise ConcurrentUpdateError(f"{storage.uri_of(key)}: still changing after {attempts} attempts")


def encryption_args(mode: str | None, key_id: str | None = None) -> dict[str, str]:
    """put_object arguments for server-side encryption `mode` (AES256 | aws:kms, with an
    optional KMS key id: the bucket's or AWS's default key otherwise); none when unset.
    Any other mode is refused, so a typo never means unencrypted writes."""
    if not mode:
        if key_id:
            raise ValueError("a KMS key id needs S3_SSE=aws:kms")
        return {}
    if mode not in SSE_MODES:
        raise ValueError(f"S3_SSE={mode!r}: use one of {', '.join(SSE_MODES)}")
    if key_id and mode != "aws:kms":
        raise ValueError("S3_SSE_KMS_KEY_ID needs S3_SSE=aws:kms")
    args = {"ServerSideEncryption": mode}
    if key_id:
        args["SSEKMSKeyId"] = key_id
    return args


def default_s3_client() -> Any:
    """The process's boto3 S3 client with adaptive retries; boto3 itself reads AWS_ENDPOINT_URL."""
    from lake.s3_clients import shared_client

    return shared_client("s3", config={"retries": {"max_attempts": 10, "mode": "adaptive"}})


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


def open_storage(
    uri: str,
    s3_client: Any | None = None,
    put_args: dict[str, str] | None = None,
    read_attempts: int = DEFAULTS.s3_read_attempts,
) -> Storage:
    """`file:///path` or a plain path gives LocalStorage; `s3://bucket/prefix` gives
    S3Storage (with `put_args` on every PUT and `read_attempts` GETs a body)."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"S3 URI {uri!r} has no bucket")
        return S3Storage(parsed.netloc, parsed.path, s3_client, put_args, read_attempts)
    if parsed.scheme == "file":
        return LocalStorage(unquote(parsed.path))
    if parsed.scheme == "":
        return LocalStorage(uri)
    raise ValueError(f"unsupported storage URI {uri!r}: use file:///path or s3://bucket/prefix")
