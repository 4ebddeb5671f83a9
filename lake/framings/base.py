"""What every framing shares: the Framing interface, raw records and their reason codes."""

from __future__ import annotations

import gzip
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar

from lake.json_text import NotText, strict_utf8
from lake.record_limits import TOO_DEEP

if TYPE_CHECKING:
    from lake.framings.sampling import Batch, SampleText
    from lake.streams import StreamSpec

TOO_DEEP_TO_PARSE = f"{TOO_DEEP}: deeper than the JSON parser's recursion allows"
GZIP_MAGIC = b"\x1f\x8b"
TOO_LARGE = "record_too_large"  # reason code of a record over the stream's max_record_bytes
PREFIX_CHARS = 64 << 10  # what the quarantine keeps of a record over the limit
BLOCK_BYTES = 4 << 20  # bytes read at a time by the streaming splitters


class UnreadableObject(Exception):
    """The whole object cannot be read (bad gzip, not UTF-8, not the declared framing)."""


@dataclass(frozen=True)
class RawRecord:
    position: int  # 0-based ordinal of the record within its object
    text: str  # the record's own text, as it appeared (re-serialised for wrapped records)
    value: Any = None  # the parsed JSON value when error is None
    error: str | None = None


class Framing(ABC):
    """One way of framing records in an object's text."""

    name: ClassVar[str]  # the `format` of streams.yaml (a detected-only framing: its label)
    classification: ClassVar[str] = "json"  # Glue's classification of such objects
    records_key: str | None = None  # the key whose list holds the records, when wrapped

    @classmethod
    def for_stream(cls, spec: StreamSpec) -> Framing:
        """The framing of a stream that declares this one as its `format`."""
        return cls()

    @abstractmethod
    def split(self, text: str) -> Iterator[RawRecord]:
        """Every record of a whole decoded object, bad ones with their error."""

    @abstractmethod
    def split_file(self, fh: BinaryIO, max_record_bytes: int) -> Iterator[RawRecord]:
        """split over a file of plain bytes, a block at a time: memory stays a few times
        max_record_bytes. A longer record comes back with an error starting TOO_LARGE and
        its first PREFIX_CHARS characters. Raises UnreadableObject for bytes not text."""

    @abstractmethod
    def sample(self, sample: SampleText, start: int, batch: Batch) -> None:
        """Gather the records of a sample (an object's start) into `batch`, from `start`."""

    def duckdb_reader(self, max_object_size: int) -> str | None:
        """A DuckDB query over a `?` list of plain files giving (filename, raw): each
        record's JSON text, in file order. None: only the Python splitter reads it."""
        return None


def decode_bytes(data: bytes) -> str:
    """Gunzip when the bytes say gzip, then decode strict UTF-8 (a BOM is dropped)."""
    if data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise UnreadableObject(f"gzip stream is corrupt or truncated: {exc}") from exc
    try:
        return strict_utf8(data)
    except NotText as exc:
        raise UnreadableObject(str(exc)) from exc


def json_objects_reader(duckdb_format: str, max_object_size: int) -> str:
    """Framing.duckdb_reader for JSON that DuckDB's read_json_objects splits itself."""
    return (
        f"SELECT filename, json::VARCHAR AS raw FROM read_json_objects(?, "
        f"format='{duckdb_format}', compression='none', "
        f"maximum_object_size={int(max_object_size)}, filename=true)"
    )
