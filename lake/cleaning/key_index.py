"""A compacted key file's probe index: a small probe answered in O(its keys), not O(the date's).

Beside an event date's `compacted.parquet` (lake.cleaning.key_files), `compacted.hi` holds
the same rows' `hi` values, sorted, as raw little-endian uint64, bucketed by their top
`bits` bits (MD5 halves: uniform), with the offset of each bucket's first row and the
hour files (name: listing version) they come from. A probe reads the head (one ranged
read: header, hour files, bucket offsets) and, per probe key, its bucket's ~BUCKET_ROWS
values; the Parquet file, whose footer alone grows by ~300 bytes every 2,048 keys (518 kB
for a date of 3.3M keys), is opened only when a probe key is found.

The index is written after its compacted file and never needed for correctness: what it
says is about hour files at listed versions (their rows hold none of these `hi` values but
the ones it lists), true whichever compacted file is current; a reader takes it only for
the hour files still at those versions. A missing, torn or stale index means the probe
reads the compacted file, as before the index.

Layout: MAGIC | bits u32 | len(absorbed JSON) u32 | rows u64 | absorbed JSON |
(2**bits + 1) offsets u32 | rows hi u64, all little-endian.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

MAGIC = b"LKHIDX01"
HEADER = struct.Struct("<8sIIQ")
BUCKET_ROWS = 256  # rows a bucket holds at least on average: 2-4 kB read a probe key
MAX_BITS = 24
HEAD_BYTES = 64 << 10  # the first read: header, hour files and (up to 4-8M rows) offsets


class Readable(Protocol):
    def seek(self, offset: int, whence: int = 0) -> int: ...
    def read(self, size: int = -1) -> bytes: ...


@dataclass(frozen=True)
class IndexProbe:
    """What an index says of a probe: the hour files (name: listing version) it covers and
    the probe's `hi` values found among their rows."""

    absorbed: dict[str, str]
    found: list[int]


def index_bytes(
    hi: pa.Array | pa.ChunkedArray, absorbed: dict[str, str], ordered: bool = False
) -> bytes:
    """The index of a compacted file whose rows hold the `hi` values `hi` (`ordered`: they
    are sorted already) and come from the hour files `absorbed`."""
    if isinstance(hi, pa.ChunkedArray):
        hi = hi.combine_chunks()
    hi = hi.cast(pa.uint64())
    if not ordered:
        hi = hi.take(pc.sort_indices(hi))
    rows = len(hi)
    bits = bucket_bits(rows)
    counts = [rows]
    if bits:
        held = pc.value_counts(pc.shift_right(hi, pa.scalar(64 - bits, pa.uint64())))
        counts = [0] * (1 << bits)
        for bucket, n in zip(
            held.field("values").to_pylist(), held.field("counts").to_pylist(), strict=True
        ):
            counts[bucket] = n
    offsets = [0, *accumulate(counts)]
    names = json.dumps(absorbed, sort_keys=True).encode()
    # native byte order: little-endian on x86/ARM
    values = hi.buffers()[1][8 * hi.offset : 8 * (hi.offset + rows)] if rows else b""
    header = HEADER.pack(MAGIC, bits, len(names), rows)
    return b"".join([header, names, struct.pack(f"<{len(offsets)}I", *offsets), values])


def bucket_bits(rows: int) -> int:
    """Bits of `hi` that pick a bucket: buckets of BUCKET_ROWS to 2 * BUCKET_ROWS rows."""
    return min(max((rows // BUCKET_ROWS).bit_length() - 1, 0), MAX_BITS)


def small_enough(keys: int, index_size: int) -> bool:
    """Whether a probe of `keys` keys touches at most about half of an index's buckets."""
    return 2 * keys * BUCKET_ROWS <= index_size // 8


def probe_index(source: Readable, size: int, probe: list[int]) -> IndexProbe:
    """What the index read from `source` (`size` bytes) says of the sorted `probe`;
    ValueError when it is not an index."""
    head = _read_at(source, 0, min(size, HEAD_BYTES))
    if len(head) < HEADER.size:
        raise ValueError("not a key index: too short")
    magic, bits, absorbed_len, rows = HEADER.unpack_from(head)
    if magic != MAGIC or bits > MAX_BITS:
        raise ValueError("not a key index")
    start = HEADER.size + absorbed_len
    absorbed = json.loads(head[HEADER.size : start])
    count = (1 << bits) + 1
    offsets_end = start + 4 * count
    if offsets_end + 8 * rows != size:
        raise ValueError("key index of an unexpected size")
    raw = head[start:offsets_end] if offsets_end <= len(head) else b""
    offsets = struct.unpack(f"<{count}I", raw or _read_at(source, start, 4 * count))
    buckets = sorted({v >> (64 - bits) for v in probe}) if bits else [0][: len(probe)]
    values = [
        _read_at(source, offsets_end + 8 * first, 8 * (end - first))
        for first, end in _ranges(offsets, buckets)
    ]
    held = pa.Array.from_buffers(
        pa.uint64(), sum(len(v) for v in values) // 8, [None, pa.py_buffer(b"".join(values))]
    )
    found = pc.filter(held, pc.is_in(held, value_set=pa.array(probe, pa.uint64())))
    return IndexProbe(absorbed, found.to_pylist())


def _ranges(offsets: tuple[int, ...], buckets: list[int]) -> Iterator[tuple[int, int]]:
    """The row ranges of the sorted `buckets`, neighbours read as one."""
    first = end = None
    for bucket in buckets:
        if first is not None and offsets[bucket] == end:
            end = offsets[bucket + 1]
            continue
        if first is not None and end > first:
            yield first, end
        first, end = offsets[bucket], offsets[bucket + 1]
    if first is not None and end > first:
        yield first, end


def _read_at(source: Readable, offset: int, length: int) -> bytes:
    source.seek(offset)
    data = source.read(length)
    if len(data) != length:
        raise ValueError("key index cut short")
    return data
