"""A Parquet object's schema and row count from its footer, fetched with ranged reads."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lake.hive_types import Array, HiveType, Struct
from lake.storage import Storage

PARQUET_MAGIC = b"PAR1"
_ARROW_SCALARS: dict[pa.DataType, str] = {
    pa.bool_(): "boolean",
    pa.int8(): "int",
    pa.int16(): "int",
    pa.int32(): "int",
    pa.uint8(): "int",
    pa.uint16(): "int",
    pa.int64(): "bigint",
    pa.uint32(): "bigint",
    pa.float16(): "double",
    pa.float32(): "double",
    pa.float64(): "double",
    pa.string(): "string",
    pa.large_string(): "string",
    pa.date32(): "date",
    pa.date64(): "date",
}


@dataclass(frozen=True)
class ParquetFooter:
    column_names: list[str]
    schema: Struct  # the footer's schema as Hive types
    rows: int


class UnreadableFooter(Exception):
    """Starts with the Parquet magic but its footer cannot be read."""


def read_footer(file: RangeFile) -> ParquetFooter:
    """The footer of the Parquet object behind `file` (only its last bytes are fetched)."""
    try:
        with pq.ParquetFile(file) as parquet:
            schema, rows = parquet.schema_arrow, parquet.metadata.num_rows
    except pa.ArrowException as exc:
        raise UnreadableFooter(str(exc)) from exc
    return ParquetFooter(schema.names, Struct({f.name: hive_type(f.type) for f in schema}), rows)


class RangeFile(io.RawIOBase):
    """A read-only, seekable file over ranged reads, so pyarrow fetches only what it needs;
    with `etag`, every read is of that version (Storage.read_range)."""

    def __init__(self, storage: Storage, key: str, size: int, etag: str | None = None) -> None:
        super().__init__()
        self._storage, self._key, self._size, self._etag = storage, key, size, etag
        self._pos = 0
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        length = min(len(buffer), self._size - self._pos)
        if length <= 0:
            return 0
        data = self._storage.read_range(self._key, self._pos, length, self._etag)
        buffer[: len(data)] = data
        self._pos += len(data)
        self.bytes_read += len(data)
        return len(data)


def hive_type(arrow: pa.DataType) -> HiveType:
    """Arrow -> Hive as Glue maps a Parquet schema; what Hive cannot hold becomes string."""
    if pa.types.is_struct(arrow):
        fields = (arrow.field(i) for i in range(arrow.num_fields))
        return Struct({f.name: hive_type(f.type) for f in fields})
    if pa.types.is_list(arrow) or pa.types.is_large_list(arrow):
        return Array(hive_type(arrow.value_type))
    if pa.types.is_dictionary(arrow):
        return hive_type(arrow.value_type)
    if pa.types.is_decimal128(arrow):
        return f"decimal({arrow.precision},{arrow.scale})"
    if pa.types.is_timestamp(arrow):
        return "timestamp"
    return _ARROW_SCALARS.get(arrow, "string")
