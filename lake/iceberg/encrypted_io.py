"""Iceberg's file IO for a lake whose S3 writes must be encrypted (S3_SSE).

pyiceberg writes table metadata (and the data files it rewrites itself) through pyarrow's
S3 file system, which cannot ask for server-side encryption. With S3_SSE set, the
catalog's `py-io-impl` is this class: reads stay pyarrow's, every S3 write is buffered
and PUT through lake.storage with the same encryption arguments as the lake's own writes
(lake.storage.encryption_args), so no object under the lake is left to the bucket's
default.
"""

from __future__ import annotations

import functools
import io
from urllib.parse import urlparse

from pyiceberg.io import OutputStream
from pyiceberg.io.pyarrow import PyArrowFile, PyArrowFileIO

from lake.storage import S3Storage, encryption_args

SSE = "lake.s3-sse"  # catalog properties this IO reads
SSE_KMS_KEY_ID = "lake.s3-sse-kms-key-id"
S3_SCHEMES = ("s3", "s3a", "s3n")


class EncryptedS3FileIO(PyArrowFileIO):
    def new_output(self, location: str) -> PyArrowFile:
        file = super().new_output(location)
        if urlparse(location).scheme not in S3_SCHEMES:
            return file
        return _EncryptedS3File(file, self.put_args(), self.properties.get("warehouse", ""))

    def put_args(self) -> tuple[tuple[str, str], ...]:
        """The lake's encryption arguments of a PUT (lake.storage.encryption_args), hashable."""
        args = encryption_args(self.properties.get(SSE), self.properties.get(SSE_KMS_KEY_ID))
        return tuple(sorted(args.items()))


class _EncryptedS3File(PyArrowFile):
    """A PyArrowFile whose writes are one boto3 PUT with encryption arguments."""

    def __init__(
        self, file: PyArrowFile, put_args: tuple[tuple[str, str], ...], lake_uri: str
    ) -> None:
        self.__dict__.update(file.__dict__)
        self._put_args, self._lake_uri = put_args, lake_uri

    def create(self, overwrite: bool = False) -> OutputStream:
        if not overwrite and self.exists():
            raise FileExistsError(f"Cannot create file, already exists: {self.location}")
        return _WriteOnClose(*storage_and_key(self._lake_uri, self.location, self._put_args))


def storage_and_key(
    lake_uri: str, location: str, put_args: tuple[tuple[str, str], ...]
) -> tuple[S3Storage, str]:
    """The storage (the lake's, else the object's bucket root) and key of an S3 location,
    its PUTs with `put_args`."""
    lake = urlparse(lake_uri)
    target = urlparse(location)
    storage = _storage(lake.netloc, lake.path, put_args)
    full_key = target.path.lstrip("/")
    key = storage.key_of(target.netloc, full_key)
    if key is None:  # not under the lake: a storage at the object's bucket root
        storage, key = _storage(target.netloc, "", put_args), full_key
    return storage, key


@functools.lru_cache(maxsize=16)
def _storage(bucket: str, prefix: str, put_args: tuple[tuple[str, str], ...]) -> S3Storage:
    """One storage (and boto3 client) per root and encryption, for every write."""
    return S3Storage(bucket, prefix, put_args=dict(put_args))


class _WriteOnClose(io.BytesIO):
    """Buffers what pyiceberg writes; one encrypted PUT through lake.storage on close."""

    def __init__(self, storage: S3Storage, key: str) -> None:
        super().__init__()
        self._storage, self._key = storage, key

    def close(self) -> None:
        if not self.closed:
            self._storage.write(self._key, self.getvalue())
        super().close()
