"""The lake's Iceberg file IO on S3 (lake.iceberg.metadata_io): a metadata file is one PUT
(conditional when it must not overwrite) and one GET, kept by location; the cache never
answers for a file deleted through the IO, and data files are never cached."""

from __future__ import annotations

import pytest
from pyiceberg.io import load_file_io

from lake.iceberg import metadata_io
from lake.iceberg.catalog import LAKE_S3_IO, s3_file_io_properties
from lake.storage import open_storage

pytestmark = pytest.mark.s3


@pytest.fixture
def file_io(s3_bucket: str):
    metadata_io.CACHE.clear()
    properties = {"py-io-impl": LAKE_S3_IO, "warehouse": f"s3://{s3_bucket}/lake"}
    return load_file_io(properties | s3_file_io_properties())


def _write(file_io, location: str, data: bytes, overwrite: bool = False) -> None:
    with file_io.new_output(location).create(overwrite=overwrite) as out:
        out.write(data)


def test_a_metadata_file_is_created_once_and_read_back_from_the_cache(
    file_io, s3_bucket: str
) -> None:
    location = f"s3://{s3_bucket}/lake/cleaned/t/metadata/00001-abc.metadata.json"
    _write(file_io, location, b'{"v": 1}')
    lake = open_storage(f"s3://{s3_bucket}/lake")
    assert lake.read("cleaned/t/metadata/00001-abc.metadata.json") == b'{"v": 1}'
    with pytest.raises(FileExistsError):  # a conditional PUT: the file stays as it was
        _write(file_io, location, b'{"v": 2}')
    assert lake.read("cleaned/t/metadata/00001-abc.metadata.json") == b'{"v": 1}'
    metadata_io.CACHE.clear()  # another process: not written by it, read once
    assert file_io.new_input(location).open().read() == b'{"v": 1}'
    assert metadata_io.CACHE.get(location) == b'{"v": 1}'


def test_a_file_another_writer_created_is_not_overwritten(file_io, s3_bucket: str) -> None:
    location = f"s3://{s3_bucket}/lake/cleaned/t/metadata/snap-1-0-abc.avro"
    open_storage(f"s3://{s3_bucket}/lake").write("cleaned/t/metadata/snap-1-0-abc.avro", b"theirs")
    with pytest.raises(FileExistsError):
        _write(file_io, location, b"ours")
    assert file_io.new_input(location).open().read() == b"theirs"


def test_a_deleted_metadata_file_leaves_the_cache(file_io, s3_bucket: str) -> None:
    location = f"s3://{s3_bucket}/lake/cleaned/t/metadata/m-0.avro"
    _write(file_io, location, b"manifest", overwrite=True)
    assert file_io.new_input(location).exists()
    file_io.delete(location)
    assert metadata_io.CACHE.get(location) is None
    assert not file_io.new_input(location).exists()
    with pytest.raises(FileNotFoundError):
        file_io.new_input(location).open()


def test_data_files_are_streamed_and_never_cached(file_io, s3_bucket: str) -> None:
    location = f"s3://{s3_bucket}/lake/cleaned/t/dt=2026-11-21/part.parquet"
    assert not metadata_io.is_metadata_file(location)
    _write(file_io, location, b"first", overwrite=True)
    open_storage(f"s3://{s3_bucket}/lake").write("cleaned/t/dt=2026-11-21/part.parquet", b"second")
    with file_io.new_input(location).open() as stream:
        assert stream.read() == b"second"
    assert metadata_io.CACHE.get(location) is None
