"""The S3 file IO of the lake's Iceberg tables: table metadata in one request a file.

pyarrow's S3 file system (pyiceberg's default IO) spends requests on every small file:
a read is a HEAD for the size and then ranged GETs; a write is a multipart upload (create,
part, complete), and a create that must not overwrite is a HEAD and a ListObjectsV2 first.
A one-object micro-batch's commit writes three metadata files and reads two or three, so
those requests were most of its Iceberg calls. Here a metadata file (`metadata/` of a
table: `*.metadata.json`, manifests and manifest lists) is:

- written with one PUT through lake.storage (the lake's encryption arguments, if any); a
  create that must not overwrite is a conditional PUT (`If-None-Match: *`): atomic, where
  pyarrow's check-then-write was not, and without the HEAD;
- read with one GET of the whole object, and kept in a small in-process cache by location.

The cache is safe because Iceberg never changes a metadata file once written: a commit
writes new files under new names (a uuid in each) and moves the catalog's pointer, which is
read from the catalog every time (never cached here). So a cached file is the file; one
written by this process is cached as it was written, and reading it back costs nothing.
Data files keep pyarrow's streaming IO (or lake.iceberg.encrypted_io's with S3_SSE).
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from urllib.parse import urlparse

from pyiceberg.io import InputFile, InputStream, OutputFile, OutputStream
from pyiceberg.io.pyarrow import PyArrowFile, PyArrowFileIO

from lake.iceberg.encrypted_io import S3_SCHEMES, SSE, EncryptedS3FileIO, storage_and_key
from lake.storage import ObjectNotFound, PreconditionFailed

CACHE_BYTES = 32 << 20  # metadata files of a busy table's recent snapshots
_METADATA_SUFFIXES = (".metadata.json", ".avro")


def is_metadata_file(location: str) -> bool:
    """Whether `location` is an S3 table metadata file (written once, never changed)."""
    parsed = urlparse(location)
    folder, _, name = parsed.path.rpartition("/")
    return (
        parsed.scheme in S3_SCHEMES
        and folder.endswith("/metadata")
        and name.endswith(_METADATA_SUFFIXES)
    )


class LakeS3FileIO(EncryptedS3FileIO):
    """pyiceberg's `py-io-impl` for an S3 lake (lake.iceberg.catalog)."""

    def new_input(self, location: str) -> PyArrowFile:
        file = super().new_input(location)
        return self._metadata(file) if is_metadata_file(location) else file

    def new_output(self, location: str) -> PyArrowFile:
        if is_metadata_file(location):
            return self._metadata(super().new_input(location))
        if self.properties.get(SSE):
            return super().new_output(location)  # a data file, buffered and encrypted
        return PyArrowFileIO.new_output(self, location)  # a data file, streamed

    def delete(self, location: str | InputFile | OutputFile) -> None:
        CACHE.drop(location if isinstance(location, str) else location.location)
        super().delete(location)

    def _metadata(self, file: PyArrowFile) -> _MetadataFile:
        lake_uri = self.properties.get("warehouse", "")
        return _MetadataFile(file, *storage_and_key(lake_uri, file.location, self.put_args()))


class _MetadataFile(PyArrowFile):
    """A metadata file read with one GET (or from the cache) and written with one PUT."""

    def __init__(self, file: PyArrowFile, storage, key: str) -> None:  # type: ignore[no-untyped-def]
        self.__dict__.update(file.__dict__)
        self._storage, self._key = storage, key

    def _bytes(self) -> bytes:
        data = CACHE.get(self.location)
        if data is None:
            try:
                data = self._storage.read(self._key)
            except ObjectNotFound as exc:
                raise FileNotFoundError(
                    f"Cannot open file, does not exist: {self.location}"
                ) from exc
            CACHE.put(self.location, data)
        return data

    def __len__(self) -> int:
        return len(self._bytes())

    def exists(self) -> bool:
        return CACHE.get(self.location) is not None or super().exists()

    def open(self, seekable: bool = True) -> InputStream:
        return io.BytesIO(self._bytes())

    def create(self, overwrite: bool = False) -> OutputStream:
        return _PutOnClose(self, overwrite)

    def to_input_file(self) -> PyArrowFile:
        return self


class _PutOnClose(io.BytesIO):
    """Buffers what pyiceberg writes; one PUT on close (conditional unless overwriting)."""

    def __init__(self, file: _MetadataFile, overwrite: bool) -> None:
        super().__init__()
        self._file, self._overwrite = file, overwrite

    def close(self) -> None:
        if not self.closed:
            data, file = self.getvalue(), self._file
            if self._overwrite:
                file._storage.write(file._key, data)
            else:
                try:
                    file._storage.write_if(file._key, data, None)
                except PreconditionFailed as exc:
                    raise FileExistsError(
                        f"Cannot create file, already exists: {file.location}"
                    ) from exc
            CACHE.put(file.location, data)
        super().close()


class _Cache:
    """Metadata files by location, the least recently used dropped past `limit` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit, self.size = limit, 0
        self._files: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, location: str) -> bytes | None:
        with self._lock:
            data = self._files.get(location)
            if data is not None:
                self._files.move_to_end(location)
            return data

    def clear(self) -> None:
        with self._lock:
            self._files.clear()
            self.size = 0

    def drop(self, location: str) -> None:
        with self._lock:
            data = self._files.pop(location, None)
            self.size -= len(data) if data is not None else 0

    def put(self, location: str, data: bytes) -> None:
        if len(data) > self.limit:
            return
        with self._lock:
            old = self._files.pop(location, None)
            self.size += len(data) - (len(old) if old is not None else 0)
            self._files[location] = data
            while self.size > self.limit:
                _, dropped = self._files.popitem(last=False)
                self.size -= len(dropped)


CACHE = _Cache(CACHE_BYTES)
