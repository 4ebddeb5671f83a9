"""Find raw values (names, e-mails, IPs, credentials) anywhere in a pipeline's outputs.

A case-insensitive substring match of every raw value against every piece of text an
output holds. Compressed or encoded containers are decoded first (gzip, Parquet: its
values, column names and key-value metadata), since a compressed page cannot be grepped.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

PARQUET_MAGIC = b"PAR1"
GZIP_MAGIC = b"\x1f\x8b"
DUCKDB_MAGIC = b"DUCK"  # at offset 8 of a DuckDB database file


@dataclass(frozen=True)
class RawValue:
    kind: str  # name, email, ip, access_key_id, secret_access_key, session_token, ...
    value: str
    where: str = ""  # the fields of the corpus that carry it
    quarantine_only: bool = False  # lands only in a record that is quarantined


@dataclass(frozen=True)
class Leak:
    place: str  # an object key, a file, a table, a Dagster event
    field: str  # a column, a metadata key, a line
    kind: str
    value: str

    def __str__(self) -> str:
        return f"{self.place} | {self.field} | {self.kind}: {self.value}"


class Scanner:
    def __init__(self, values: Iterable[RawValue]) -> None:
        self.values = [(v, v.value.lower()) for v in values]

    def text(self, place: str, field: str, text: str | None) -> list[Leak]:
        if not text:
            return []
        low = text.lower()
        return [Leak(place, field, v.kind, v.value) for v, needle in self.values if needle in low]

    def value(self, place: str, field: str, value: Any) -> list[Leak]:
        """Any Python value (a nested one as JSON, so keys are scanned too)."""
        if value is None:
            return []
        if isinstance(value, str):
            return self.text(place, field, value)
        if isinstance(value, bytes):
            return self.blob(place, value, field)
        return self.text(place, field, json.dumps(value, default=str, ensure_ascii=False))

    def arrow(self, place: str, table: pa.Table) -> list[Leak]:
        leaks = self.text(place, "(column names)", " ".join(table.column_names))
        for name in table.column_names:
            for item in table.column(name).to_pylist():
                leaks += self.value(place, name, item)
        return _unique(leaks)

    def parquet(self, place: str, data: bytes) -> list[Leak]:
        file = pq.ParquetFile(io.BytesIO(data))
        leaks = self.text(place, "(parquet key-value metadata)", _kv_text(file.metadata.metadata))
        for f in file.schema_arrow:
            leaks += self.text(place, f"{f.name} (field metadata)", _kv_text(f.metadata))
        return leaks + self.arrow(place, file.read())

    def blob(self, place: str, data: bytes, field: str = "(content)") -> list[Leak]:
        """Bytes of unknown kind: Parquet and gzip are decoded, anything else read as text."""
        if data[:4] == PARQUET_MAGIC and data[-4:] == PARQUET_MAGIC:
            return self.parquet(place, data)
        if data[:2] == GZIP_MAGIC:
            try:
                return self.blob(place, gzip.decompress(data), f"{field} (gunzipped)")
            except (OSError, EOFError, zlib.error):
                pass
        return self.text(place, field, data.decode("utf-8", errors="replace"))

    def tree(self, root: Path, skip: Iterable[Path] = ()) -> list[Leak]:
        """Every file under `root` (DuckDB database files go through DuckDB: pass their
        paths in `skip` and scan them with duckdb_file)."""
        skipped = {p.resolve() for p in skip}
        leaks: list[Leak] = []
        for path in sorted(_files(root)):
            if path.resolve() in skipped:
                continue
            leaks += self.blob(str(path), path.read_bytes())
        return leaks


def is_duckdb_file(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(12)[8:12] == DUCKDB_MAGIC


def load_values(path: Path) -> list[RawValue]:
    return [RawValue(**entry) for entry in json.loads(path.read_text())]


def _files(root: Path) -> Iterator[Path]:
    return (p for p in root.rglob("*") if p.is_file())


def _kv_text(metadata: dict[bytes, bytes] | None) -> str:
    if not metadata:
        return ""
    return "\n".join(
        f"{k.decode(errors='replace')}={v.decode(errors='replace')}" for k, v in metadata.items()
    )


def _unique(leaks: list[Leak]) -> list[Leak]:
    return list(dict.fromkeys(leaks))
