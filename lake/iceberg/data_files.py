"""A run's files added to a table transaction from the footers the commit already read.

pyiceberg's `Transaction.add_files` opens every file again and, for each, converts its
Arrow schema to check it against the table's, builds the statistics plan and the column
mapping from the table's schema, then turns the footer's statistics into a DataFile:
~10 ms a file of Python (hours29's 100 files: ~1 s of the run's commit), most of it the
per-file schema work. `add_files` here does the same with each distinct file schema
checked once, the plan and mapping built once, and no second read of the footers
(`Footer`s read by lake.iceberg.commit), so the DataFiles, their order and the snapshot
are the ones pyiceberg's `add_files(..., check_duplicate_files=False)` gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import (
    _check_pyarrow_schema_compatible,
    compute_statistics_plan,
    data_file_statistics_from_parquet_metadata,
    parquet_path_to_id_mapping,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.table import TableProperties, Transaction


@dataclass(frozen=True)
class Footer:
    """A data file's Parquet footer and size, as read once for the commit."""

    metadata: pq.FileMetaData
    size: int


def read_footer(io: FileIO, uri: str) -> Footer:
    """The file's footer and its size (from the opened file when it knows it: no second
    request on S3)."""
    input_file = io.new_input(uri)
    with input_file.open() as stream:
        metadata = pq.read_metadata(stream)
        size = stream.size() if hasattr(stream, "size") else len(input_file)
    return Footer(metadata, size)


def add_files(
    tx: Transaction, uris: list[str], footers: dict[str, Footer], summary: dict[str, str]
) -> None:
    """Add the files `uris` (each in `footers`) to `tx` as pyiceberg's add_files would."""
    if len(uris) != len(set(uris)):
        raise ValueError("File paths must be unique")
    if tx.table_metadata.name_mapping() is None:
        mapping = tx.table_metadata.schema().name_mapping.model_dump_json()
        tx.set_properties(**{TableProperties.DEFAULT_NAME_MAPPING: mapping})
    with tx._append_snapshot_producer(summary) as append:
        for data_file in _data_files(tx, uris, footers):
            append.append_data_file(data_file)


def _data_files(tx: Transaction, uris: list[str], footers: dict[str, Footer]) -> list[DataFile]:
    metadata = tx.table_metadata
    schema, spec = metadata.schema(), metadata.spec()
    plan = compute_statistics_plan(schema, metadata.properties)
    columns = parquet_path_to_id_mapping(schema)
    checked: list[pa.Schema] = []  # the run's files share a few schemas
    data_files = []
    for uri in uris:
        footer = footers[uri]
        arrow_schema = footer.metadata.schema.to_arrow_schema()
        if not any(arrow_schema.equals(s, check_metadata=True) for s in checked):
            _check_pyarrow_schema_compatible(
                schema, arrow_schema, format_version=metadata.format_version
            )
            checked.append(arrow_schema)
        statistics = data_file_statistics_from_parquet_metadata(footer.metadata, plan, columns)
        data_files.append(
            DataFile.from_args(
                content=DataFileContent.DATA,
                file_path=uri,
                file_format=FileFormat.PARQUET,
                partition=statistics.partition(spec, schema),
                file_size_in_bytes=footer.size,
                sort_order_id=None,
                spec_id=metadata.default_spec_id,
                equality_ids=None,
                key_metadata=None,
                **statistics.to_serialized_dict(),
            )
        )
    return data_files
