"""Landed objects brought into memory as plain (decompressed) bytes, within a cap.

Cleaning bounds its memory by what is decompressed, not by what is stored: a 12 MB gzip
can expand to gigabytes. Each object is therefore gunzipped here, in steps of at most
STEP bytes, into memory; decompression stops as soon as the stream's
`max_object_expanded_bytes` is passed, and the object is then refused whole (its reason
starts with `object_too_large_expanded`), having cost no more than the cap in CPU and
memory. A gzip stream that is corrupt or truncated is refused whole as `unreadable_object`.
Nothing is written to local disk: DuckDB reads the bytes where they are
(lake.cleaning.landed_files), and a plain local file is read in place. The passes of an
hour are sized by the bytes decompressed here (lake.cleaning.hour), so a pass holds at most
CLEAN_CHUNK_BYTES (or one object up to the cap), and LOOKAHEAD objects wait beside it.
"""

from __future__ import annotations

import io
import os
import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from lake.framings.base import GZIP_MAGIC
from lake.storage import LocalStorage, ObjectInfo, Storage, UnsafeKeyError

READ_BYTES = 1 << 20  # stored bytes fed to zlib at a time
STEP = 8 << 20  # most decompressed bytes zlib may return at a time (a bomb is cut here)
PREFIX_BYTES = 64 << 10  # what the quarantine keeps of an object refused whole
LOOKAHEAD = 3  # objects fetched ahead of the pass that needs them (bounded memory use)


@dataclass(frozen=True)
class LandedObject(ObjectInfo):
    """A listed object and its plain bytes, in memory or, for a plain local file, where it
    lies (`path`); or why it has none."""

    path: Path | None = None
    expanded_bytes: int = 0
    refusal: str | None = None  # "<reason_code>: <detail>" when the object is refused whole
    raw_prefix: str = ""  # the start of its text, for the quarantine, when refused
    held: list[bytes] = field(default_factory=list)  # the bytes in memory, until discard()

    @property
    def readable(self) -> bool:
        return self.path is not None or bool(self.held)

    @property
    def data(self) -> bytes | None:
        """The plain bytes when they are in memory (None for a file read in place)."""
        return self.held[0] if self.held else None

    def open(self) -> BinaryIO:
        """The plain bytes as a binary stream."""
        if self.path is not None:
            return self.path.open("rb")
        if not self.held:
            raise ValueError(f"{self.key}: no bytes (refused, or discarded)")
        return io.BytesIO(self.held[0])

    def discard(self) -> None:
        """Let the bytes go (the pass is done with them)."""
        self.held.clear()


class _TooLarge(Exception):
    pass


class _Corrupt(Exception):
    pass


def fetch_object(landing: Storage, info: ObjectInfo, max_expanded: int) -> LandedObject:
    """The object's plain bytes in memory (or, for a plain local file, where it is)."""
    base = {"key": info.key, "size": info.size, "last_modified": info.last_modified}
    try:
        if isinstance(landing, LocalStorage):
            path = landing.path(info.key)
            with open(path, "rb") as fh:
                head = fh.read(2)
            if head != GZIP_MAGIC:  # plain and local: read in place
                size = os.stat(path).st_size
                if size > max_expanded:
                    return LandedObject(**base, **_too_large(path.open("rb"), size, max_expanded))
                return LandedObject(**base, path=path, expanded_bytes=size)
        source = landing.open(info.key)
    except UnsafeKeyError as exc:
        return LandedObject(**base, refusal=f"unsafe_key: {exc}")
    out = _Chunks()
    try:
        with source:
            written = _copy_expanded(source, out, max_expanded)
    except _TooLarge:
        return LandedObject(**base, **_too_large(out.start(), None, max_expanded))
    except _Corrupt as exc:
        # what came out before the damage, else the stored bytes as they are
        prefix = _text_prefix(out.start()) or landing.read_range(info.key, 0, PREFIX_BYTES).decode(
            "utf-8", "replace"
        )
        return LandedObject(
            **base,
            refusal=f"unreadable_object: gzip stream is corrupt or truncated: {exc}",
            raw_prefix=prefix,
        )
    return LandedObject(**base, expanded_bytes=written, held=[out.joined()])


class _Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


class _Chunks:
    """What zlib returns, kept as it comes: joined once at the end (a BytesIO copied
    each chunk in, copied again as it grew and once more in getvalue)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def joined(self) -> bytes:
        return self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)

    def start(self) -> BinaryIO:
        """The first PREFIX_BYTES written (for the quarantine of a refused object)."""
        head, size = [], 0
        for part in self.parts:
            if size >= PREFIX_BYTES:
                break
            head.append(part[: PREFIX_BYTES - size])
            size += len(head[-1])
        return io.BytesIO(b"".join(head))


def fetch_objects(
    landing: Storage, objects: Iterable[ObjectInfo], max_expanded: int
) -> Iterator[LandedObject]:
    """fetch_object for each object, in order, a few ahead on two threads (zlib and the
    network release the GIL, so this overlaps the DuckDB work of the current pass)."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="fetch") as pool:
        pending: deque[Future[LandedObject]] = deque()
        for info in objects:
            pending.append(pool.submit(fetch_object, landing, info, max_expanded))
            if len(pending) > LOOKAHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _copy_expanded(source: BinaryIO, out: _Writable, cap: int) -> int:
    """Copy `source` to `out`, gunzipping every gzip member; raise _TooLarge past `cap`
    bytes written, _Corrupt on a bad or truncated gzip stream."""
    data = source.read(READ_BYTES)
    if data[:2] != GZIP_MAGIC:
        written = 0
        while data:
            written += len(data)
            if written > cap:
                raise _TooLarge
            out.write(data)
            data = source.read(READ_BYTES)
        return written
    written = 0
    inflater: Any = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        while True:
            if not data:
                data = source.read(READ_BYTES)
                if not data:
                    break
            if inflater is None:  # between members: another member, or zero padding
                data = data.lstrip(b"\x00")
                if not data:
                    continue
                if data[:2] != GZIP_MAGIC:
                    raise _Corrupt("bytes after the last gzip member")
                inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            chunk = inflater.decompress(data, STEP)
            if written + len(chunk) > cap:
                out.write(chunk[: cap - written])  # the start stays, for the quarantine
                raise _TooLarge
            written += len(chunk)
            out.write(chunk)
            if inflater.eof:
                data, inflater = inflater.unused_data, None
            else:
                data = inflater.unconsumed_tail
        if inflater is not None:
            tail = inflater.flush()
            written += len(tail)
            if written > cap:
                raise _TooLarge
            out.write(tail)
            if not inflater.eof:
                raise _Corrupt("the stream ends inside a gzip member")
    except zlib.error as exc:
        raise _Corrupt(str(exc)) from exc
    return written


def _too_large(text: BinaryIO, size: int | None, cap: int) -> dict[str, str]:
    how_big = (
        f"{size} bytes"
        if size is not None
        else f"more than {cap} bytes (decompression stopped there)"
    )
    return {
        "refusal": (
            f"object_too_large_expanded: the object expands to {how_big}, over "
            f"max_object_expanded_bytes={cap}"
        ),
        "raw_prefix": _text_prefix(text),
    }


def _text_prefix(fh: BinaryIO) -> str:
    with fh:
        return fh.read(PREFIX_BYTES).decode("utf-8", "replace")
