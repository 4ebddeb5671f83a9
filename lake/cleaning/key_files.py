"""Dedup key files: written sorted by key in small row groups, probed by range reads.

A key file holds (hi, lo, obj) rows sorted by (hi, lo) in row groups of ROW_GROUP_ROWS
rows, with min/max statistics on `hi` only, so a probe for P keys reads the footer and at
most P row groups. An event date's folder holds one file per arrival hour (the truth,
merged by compare-and-swap by that hour's runs, never deleted) and `compacted.parquet`:
the hour files merged into one sorted file, with a `src` column (the hour file a row came
from) and, in its key-value metadata, the listing version of each hour file it absorbed.
A reader takes from the compacted file only the rows of hour files still at that version
and reads every other hour file itself, so a rewritten hour file (new keys, a reprocessed
object's keys taken out) never needs the compacted file rewritten first. Run files
(lake.cleaning.run_keys: one run's keys for an hour, under `<YYYYMMDDTHH>/`, until folded
into the hour file) are read after them, in write order, each taking out of the rows
before it those of the objects it replaces (REPLACES in its footer).

Files are read through the lake's Storage: a local file as it is, an S3 object by ranged
GETs (footer, then the row groups needed), never copied to local disk. pyarrow's dataset
filters do not prune row groups for an `is_in` filter (measured: 403 of 403 row groups
read; an OR of 100 equalities prunes but takes 3 s) and DuckDB, which prunes IN lists,
has no reader over S3 here, so the row groups are chosen here: the footer carries each
row group's first `hi` (GROUP_STARTS; reading 1,600 groups' statistics through pyarrow's
Python objects took 50 ms a file), and a probe reads the `hi` column of those groups,
whole rows only of the groups with a hit.

A small probe asks a compacted file's probe index (lake.cleaning.key_index: its `hi`
values bucketed, written beside it by each compaction) first, and opens the compacted file
only when a probe key is in it: a Parquet footer grows with the file's row groups (518 kB
for a date of 3.3M keys), the index's head does not.

A probe that would touch most of a file's row groups (a backfill hour's many keys) reads
the whole file instead and keeps it in a cache bounded by CACHE_BYTES, keyed by the
file's listing version: the hours of one run then read each file of their windows once.
A date's files read whole are matched against the probe in one DuckDB join (the probe
hashed once, the rows scanned at DuckDB's speed), not file by file with pyarrow's is_in.

Compaction (compact_due) is not on the cleaning path: a run compacts the dates it wrote
keys for once, at its end, when COMPACT_AFTER_FILES hour files are outside the compacted
file; the maintenance asset `compaction/dedup_keys/<stream>` compacts whatever is left.
"""

from __future__ import annotations

import base64
import bisect
import io
import json
import struct
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date
from typing import BinaryIO, NamedTuple

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from botocore.exceptions import ClientError

from lake import layout
from lake.cleaning.key_index import index_bytes, probe_index, small_enough
from lake.parquet_footer import RangeFile
from lake.storage import (
    ConcurrentUpdateError,
    LocalStorage,
    ObjectInfo,
    ObjectNotFound,
    Storage,
    compare_and_swap,
)

KEYS_SCHEMA = pa.schema([("hi", pa.uint64()), ("lo", pa.uint64()), ("obj", pa.string())])
SRC = "src"  # the compacted file's column: the name of the hour file a row came from
ABSORBED = b"lake.dedup.absorbed"  # compacted file metadata: {hour file name: listing version}
GROUP_STARTS = b"lake.dedup.group_starts"  # each row group's first hi, uint64 LE, base64
ROW_GROUP_ROWS = 2048
# rows decoded and written at a time: whole row groups, so they stay aligned with GROUP_STARTS
WRITE_ROWS = ROW_GROUP_ROWS * 128
CACHE_BYTES = 512 << 20
COMPACT_AFTER_FILES = 4  # hour files not (or no longer) in the compacted file
REPLACES = b"lake.dedup.replaces"  # run file metadata: JSON list of the objects it replaces
WHOLE_READ_BYTES = 512 << 10  # S3 key files read in one GET up to this size
SMALL_ROWS = 1 << 16  # files read whole up to this many rows are matched by pyarrow, not DuckDB
RACES = 5  # readings of a date that may find a run file gone (folded) before giving up
_STRINGS = pa.dictionary(pa.int32(), pa.string())
NAMES_ENCODED = pa.schema([("hi", pa.uint64()), ("lo", pa.uint64()), ("obj", _STRINGS)])
_ENCODED = NAMES_ENCODED.append(pa.field(SRC, _STRINGS))


@dataclass(frozen=True)
class KeyWindow:
    """The key files of the event dates a run checks its records' keys against, without
    the keys of the objects it reprocesses (their earlier keys no longer count)."""

    lake: Storage
    stream: str
    days: list[date]
    reprocessed: frozenset[str] = frozenset()

    def hits(self, keys: pa.Table, con: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
        """The rows (hi, lo) of the window's key files whose `hi` is among `keys`' (a
        superset of the keys found: the caller matches both halves). Files read whole are
        matched in DuckDB on `con` (default: a connection of this thread's own)."""
        empty = KEYS_SCHEMA.empty_table().select(["hi", "lo"])
        if not self.days or keys.num_rows == 0:
            return empty
        listings = {day: _listed(self.lake, self.stream, day) for day in self.days}
        listings = {day: listing for day, listing in listings.items() if not _bare(listing)}
        if not listings:
            return empty  # no key file in the window (a first run): no probe to make
        probe = pc.unique(keys["hi"].combine_chunks().cast(pa.uint64()))
        probe = probe.take(pc.sort_indices(probe))
        con = _connection() if con is None else con
        rows = pa.concat_tables(
            part
            for day, listing in listings.items()
            for part in day_keys(self.lake, self.stream, day, probe, con, listing)
        )
        if self.reprocessed:
            gone = pa.array(sorted(self.reprocessed), pa.string())
            rows = rows.filter(pc.invert(pc.is_in(rows["obj"], value_set=gone)))
        return rows.select(["hi", "lo"])


def day_keys(
    lake: Storage,
    stream: str,
    day: date,
    probe: pa.Array,
    con: duckdb.DuckDBPyConnection,
    listing: _Listing | None = None,
) -> list[pa.Table]:
    """The rows (hi, lo, obj) of an event date's key files whose `hi` is in `probe`: the
    compacted file's rows of hour files it holds at their current version, the rows of
    every other hour file, then each run file's (lake.cleaning.run_keys) in write order,
    each taking out the rows before it of the objects it replaces. `listing`: the date's
    files as just listed (default: listed here)."""
    for _ in range(RACES):
        if listing is None:
            listing = _listed(lake, stream, day)
        found = _hour_rows(lake, listing, probe, con)
        try:
            return [_with_runs(lake, pa.concat_tables(found), listing.runs, probe, con)]
        except (ObjectNotFound, FileNotFoundError):
            listing = None  # a run file folded into its hour file meanwhile: list again
    raise ConcurrentUpdateError(
        f"{lake.uri_of(layout.dedup_keys_folder(stream, day))}: run files kept vanishing"
    )


def _hour_rows(
    lake: Storage, listing: _Listing, probe: pa.Array, con: duckdb.DuckDBPyConnection
) -> list[pa.Table]:
    found = [KEYS_SCHEMA.empty_table()]
    hours, current = listing.hours, {}
    indexed = _indexed_miss(lake, listing, probe)
    if indexed is not None:  # no probe key in the hour files the index covers
        current = _current(indexed, hours)
    elif listing.compacted is not None:
        table = read_keys(lake, listing.compacted, probe, compacted=True, con=con)
        current = _current(absorbed_of(table), hours)
        names = pa.array(sorted(current), pa.string())
        found.append(_plain(table.filter(pc.is_in(table[SRC], value_set=names))))
    others = [i for n, i in hours.items() if not i.etag or current.get(n) != i.etag]
    read = [_read(lake, info, probe) for info in others]
    found += [_plain(table) for table, whole in read if not whole]
    # the files read whole (a large pass: a backfill hour) matched in one join, so the
    # pass's keys are hashed once a date, not once a file
    whole = [
        table.select(KEYS_SCHEMA.names).replace_schema_metadata(None)
        for table, is_whole in read
        if is_whole
    ]
    if whole:
        found.append(_plain(_small_or_matched(con, pa.concat_tables(whole), probe)))
    return found


def _indexed_miss(lake: Storage, listing: _Listing, probe: pa.Array) -> dict[str, str] | None:
    """The hour files (name: listing version) the date's probe index covers, when none
    of their rows holds a `probe` value (lake.cleaning.key_index); None when the compacted
    file is to be read instead: no index or compacted file, a probe too large for it, a
    value found, an index unreadable or rewritten since listed."""
    index = listing.index
    if index is None or listing.compacted is None or not small_enough(len(probe), index.size):
        return None
    try:
        with _opened(lake, index) as source:
            answer = probe_index(source, index.size, probe.to_pylist())
    except (OSError, ValueError, KeyError, struct.error, ClientError, pa.ArrowException):
        return None
    return None if answer.found else answer.absorbed


def _with_runs(
    lake: Storage,
    rows: pa.Table,
    runs: list[ObjectInfo],
    probe: pa.Array,
    con: duckdb.DuckDBPyConnection,
) -> pa.Table:
    """`rows` with the run files' rows in `probe`, each run file in order first taking out
    the rows of the objects it replaces."""
    for info in runs:
        table, whole = _read(lake, info, probe)
        gone = replaces_of(table)
        if whole:
            table = _small_or_matched(con, table, probe)
        rows = pa.concat_tables([replaced(rows, gone), _plain(table)])
    return rows


def _small_or_matched(con: duckdb.DuckDBPyConnection, table: pa.Table, probe: pa.Array) -> pa.Table:
    """The rows of `table` whose `hi` is in `probe`: by pyarrow for a small table (a
    DuckDB round trip costs more than the match), else in DuckDB (_matched)."""
    return _hits(table, probe) if table.num_rows <= SMALL_ROWS else _matched(con, table, probe)


def replaces_of(table: pa.Table) -> pa.Array:
    """The objects a run file (as read, with its schema metadata) replaces."""
    names = json.loads((table.schema.metadata or {}).get(REPLACES, b"[]"))
    return pa.array(names, pa.string())


def replaced(rows: pa.Table, gone: pa.Array) -> pa.Table:
    """`rows` (with an `obj` column) without those of the objects `gone`."""
    if len(gone) == 0 or rows.num_rows == 0:
        return rows
    kept = [_not_in(chunk, gone) for chunk in rows["obj"].chunks]
    return rows.filter(pa.chunked_array(kept, pa.bool_()))


def _not_in(names: pa.Array, gone: pa.Array) -> pa.Array:
    """Whether each name is not in `gone`; a dictionary's values tested once each."""
    if pa.types.is_dictionary(names.type):
        return pc.invert(pc.is_in(names.dictionary, value_set=gone)).take(names.indices)
    return pc.invert(pc.is_in(names, value_set=gone))


def compact_day(lake: Storage, stream: str, day: date, min_files: int = 1) -> bool:
    """Merge the event date's hour files into its compacted file, when at least
    `min_files` of them are not in it at their current version; whether it was written."""
    key = layout.dedup_keys_compacted(stream, day)
    written: list[tuple[pa.Array, dict[str, str]]] = []  # the last content's sorted hi, hours

    def merged(old: bytes | None) -> bytes | None:
        hours = _listed(lake, stream, day).hours
        table = _ENCODED.empty_table()
        if old is not None:
            table = pq.read_table(pa.BufferReader(old), read_dictionary=["obj", SRC])
        current = _current(absorbed_of(table), hours)
        fresh = {n: i for n, i in hours.items() if i.etag and current.get(n) != i.etag}
        if len(fresh) < min_files:
            return None
        names = pa.array(sorted(current), pa.string())
        kept = table.filter(pc.is_in(table[SRC], value_set=names))
        # strings stay dictionary-encoded (as read): nothing decoded, a name per row
        parts = [kept.select(_ENCODED.names).cast(_ENCODED)]
        for name, info in fresh.items():
            rows = read_keys(lake, info).select(KEYS_SCHEMA.names)
            zeros = pa.nulls(rows.num_rows, pa.int32()).fill_null(0)
            src = pa.DictionaryArray.from_arrays(zeros, pa.array([name], pa.string()))
            parts.append(rows.append_column(SRC, src).cast(_ENCODED))
        absorbed = current | {n: i.etag for n, i in fresh.items()}
        metadata = {ABSORBED: json.dumps(absorbed, sort_keys=True).encode()}
        content, hi = sorted_key_file(pa.concat_tables(parts), metadata)
        written[:] = [(hi, absorbed)]
        return content

    if compare_and_swap(lake, key, merged) is None:
        return False
    # after the compacted file: an index left stale by a racing compaction is still true
    # of the hour files it names (see lake.cleaning.key_index)
    lake.write(layout.dedup_keys_index(stream, day), index_bytes(*written[0], ordered=True))
    return True


def compact_due(lake: Storage, stream: str, days: Iterable[date]) -> list[date]:
    """Compact each of the event dates `days` whose compacted file misses at least
    COMPACT_AFTER_FILES hour files; the dates compacted. A run calls it once at its end
    (lake.cleaning.commit), for the dates it wrote keys for: each compaction costs the
    date's keys, so a run pays it at most once a date, never per hour or pass, and a
    probe between two compactions opens fewer than COMPACT_AFTER_FILES hour files a date
    besides the compacted file."""
    return [day for day in sorted(set(days)) if _compact_if_due(lake, stream, day)]


def _compact_if_due(lake: Storage, stream: str, day: date) -> bool:
    listing = _listed(lake, stream, day)
    hours = listing.hours
    if len(hours) < COMPACT_AFTER_FILES:
        return False
    current = {} if listing.compacted is None else _current(_absorbed(lake, listing), hours)
    fresh = sum(1 for n, i in hours.items() if i.etag and current.get(n) != i.etag)
    return fresh >= COMPACT_AFTER_FILES and compact_day(lake, stream, day, COMPACT_AFTER_FILES)


def _absorbed(lake: Storage, listing: _Listing) -> dict[str, str]:
    """The compacted file's absorbed hour files: from the cache, else from the probe
    index's head (it names no more hour files than a compacted file does), else from the
    compacted file's footer (518 kB for a date of 3.3M keys)."""
    compacted = listing.compacted
    assert compacted is not None
    cached = _CACHE.get(lake, compacted)
    if cached is not None:
        return absorbed_of(cached)
    if listing.index is not None:
        try:
            with _opened(lake, listing.index) as source:
                return probe_index(source, listing.index.size, []).absorbed
        except (OSError, ValueError, KeyError, struct.error, ClientError, pa.ArrowException):
            pass
    with _opened(lake, compacted) as source:
        metadata = pq.ParquetFile(source).schema_arrow.metadata or {}
    return json.loads(metadata.get(ABSORBED, b"{}"))


class _Listing(NamedTuple):
    """A date's key files: hour files by name, run files (lake.cleaning.run_keys) in write
    order, the compacted file and its probe index (None when there is none)."""

    hours: dict[str, ObjectInfo]
    runs: list[ObjectInfo]
    compacted: ObjectInfo | None
    index: ObjectInfo | None


def _listed(lake: Storage, stream: str, day: date) -> _Listing:
    folder = layout.dedup_keys_folder(stream, day)
    compacted_key = layout.dedup_keys_compacted(stream, day)
    index_key = layout.dedup_keys_index(stream, day)
    hours, runs, compacted, index = {}, [], None, None
    for info in lake.list(folder):
        name = info.key[len(folder) :]
        if info.key == compacted_key:
            compacted = info
        elif info.key == index_key:
            index = info
        elif name.endswith(".parquet"):
            if "/" in name:
                runs.append(info)
            else:
                hours[name] = info
    return _Listing(hours, sorted(runs, key=lambda i: i.key), compacted, index)


def _bare(listing: _Listing) -> bool:
    """Whether a date has no key file (its probe index alone says nothing)."""
    return not listing.hours and not listing.runs and listing.compacted is None


def _current(absorbed: dict[str, str], hours: dict[str, ObjectInfo]) -> dict[str, str]:
    """The absorbed hour files still at the version the compacted file holds."""
    return {n: v for n, v in absorbed.items() if n in hours and hours[n].etag == v}


def _plain(table: pa.Table) -> pa.Table:
    return table.select(KEYS_SCHEMA.names).cast(KEYS_SCHEMA)


def key_file_bytes(
    table: pa.Table,
    metadata: dict[bytes, bytes] | None = None,
    schema: pa.Schema | None = None,
) -> bytes:
    """A key file's content: `table`'s rows sorted by (hi, lo), small row groups, the
    first `hi` of each row group in the footer (GROUP_STARTS); its columns typed as
    `schema` (default: the table's)."""
    return sorted_key_file(table, metadata, schema)[0]


def sorted_key_file(
    table: pa.Table,
    metadata: dict[bytes, bytes] | None = None,
    schema: pa.Schema | None = None,
) -> tuple[bytes, pa.Array]:
    """key_file_bytes, and the file's `hi` column in its order (a compaction's probe
    index is made of it: no second sort of a date's keys).

    The rows are put in order by index and decoded and written WRITE_ROWS at a time, their
    names dictionary-encoded meanwhile: a big hour's keys (7M in the 2 GB hour) hold each
    object's name once, not once a row in the table, its sorted copy and the writer's.
    Rows already in order (a run's keys, fetched sorted from DuckDB) are not sorted again:
    Arrow's sort of the 2 GB hour's keys took 3-4 s."""
    order = _sort_order(table)
    firsts = pa.array(range(0, table.num_rows, ROW_GROUP_ROWS), pa.int64())
    if order is not None:
        firsts = pc.take(order, firsts)
    starts = pc.take(table["hi"], firsts).combine_chunks().cast(pa.uint64())
    packed = starts.buffers()[1].to_pybytes()[: 8 * len(starts)] if len(starts) else b""
    schema = (schema or table.schema).with_metadata(
        {**(metadata or {}), GROUP_STARTS: base64.b64encode(packed)}
    )
    rows = _names_encoded(table.select(schema.names))
    out = io.BytesIO()
    with pq.ParquetWriter(
        out,
        schema,
        # zstd on the random halves too: a ranged read of a rewritten S3 object then
        # misses its page headers and fails (and is read again whole) instead of
        # finding another version's pages at the same offsets
        compression="zstd",
        use_dictionary=[c for c in schema.names if c not in ("hi", "lo")],  # random
        write_statistics=["hi"],
    ) as writer:
        for start in range(0, table.num_rows, WRITE_ROWS):
            if order is None:
                part = rows.slice(start, WRITE_ROWS)
            else:
                part = rows.take(order.slice(start, WRITE_ROWS))
            writer.write_table(part.cast(schema), row_group_size=ROW_GROUP_ROWS)
    hi = table["hi"] if order is None else pc.take(table["hi"], order)
    return out.getvalue(), hi.combine_chunks()


def _sort_order(table: pa.Table) -> pa.Array | None:
    """The indices that sort `table` by (hi, lo) (stable), None when it is in that order."""
    if table.num_rows > 1:
        hi, lo = table["hi"], table["lo"]
        n = table.num_rows - 1
        before, after = hi.slice(0, n), hi.slice(1)
        tied = pc.and_(pc.equal(before, after), pc.less_equal(lo.slice(0, n), lo.slice(1)))
        if not pc.all(pc.or_(pc.less(before, after), tied)).as_py():
            return pc.sort_indices(table, sort_keys=[("hi", "ascending"), ("lo", "ascending")])
    return None


def _names_encoded(table: pa.Table) -> pa.Table:
    """`table` with its string columns dictionary-encoded, one dictionary a column."""
    for i, field in enumerate(table.schema):
        if pa.types.is_string(field.type):
            encoded = pc.dictionary_encode(table.column(i))
            table = table.set_column(i, field.with_type(encoded.type), encoded)
    return table.unify_dictionaries()


def absorbed_of(table: pa.Table) -> dict[str, str]:
    """The hour files (name: listing version) a compacted file's rows come from."""
    return json.loads((table.schema.metadata or {}).get(ABSORBED, b"{}"))


def read_keys(
    lake: Storage,
    info: ObjectInfo,
    probe: pa.Array | None = None,
    compacted: bool = False,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pa.Table:
    """The rows of a key file (hi, lo, obj, and src when `compacted`) whose `hi` is in
    `probe` (sorted UBIGINT; None: every row), with the file's schema metadata."""
    table, whole = _read(lake, info, probe, compacted)
    if probe is None or not whole:
        return table
    return _matched(_connection() if con is None else con, table, probe)


def _read(
    lake: Storage, info: ObjectInfo, probe: pa.Array | None, compacted: bool = False
) -> tuple[pa.Table, bool]:
    """The key file whole (True: from the cache, or read and cached), or the rows of the
    row groups `probe` touches (False) when they are at most half of the file's."""
    cached = _CACHE.get(lake, info)
    if cached is not None:
        return cached, True
    strings = ["obj", SRC] if compacted else ["obj"]
    try:
        with _opened(lake, info) as source:
            parquet = pq.ParquetFile(source, pre_buffer=True, read_dictionary=strings)
            count = parquet.metadata.num_row_groups
            # a probe with more keys than the file has groups touches most of them
            small = probe is not None and len(probe) < count
            groups = _touched(parquet, probe.to_pylist()) if small else None  # type: ignore[union-attr]
            if groups is not None and 2 * len(groups) <= count:
                return _probed(parquet, groups, probe), False  # type: ignore[arg-type]
            cached = parquet.read()
    except (OSError, pa.ArrowException, ClientError):
        if isinstance(lake, LocalStorage):
            raise
        # an S3 object rewritten since it was listed (its ranged reads are pinned to the
        # listed version: PreconditionFailed): once more, whole, in memory, cached under
        # the version read (the listed one may come back, with its own content)
        versioned = lake.read_versioned(info.key)
        if versioned is None:
            raise ObjectNotFound(lake.uri_of(info.key)) from None
        data, etag = versioned
        cached = pq.ParquetFile(pa.BufferReader(data), read_dictionary=strings).read()
        info = replace(info, etag=etag)
    _CACHE.put(lake, info, cached)
    return cached, True


def _matched(con: duckdb.DuckDBPyConnection, table: pa.Table, probe: pa.Array) -> pa.Table:
    """The rows of `table` whose `hi` is in `probe`: DuckDB finds their positions from
    `hi` alone (the probe hashed once; pyarrow's is_in hashes it again for every call, at
    several times DuckDB's cost per row), then the rows are taken, strings still encoded."""
    positions = pc.subtract(pc.cumulative_sum(pa.nulls(table.num_rows, pa.int64()).fill_null(1)), 1)
    probe_name = f"{_MATCH_PREFIX}probe"
    con.register(_MATCH_PREFIX, pa.table({"hi": table["hi"], "n": positions}))
    con.register(probe_name, pa.table({"hi": probe}))
    try:
        found = con.sql(
            f"SELECT n FROM {_MATCH_PREFIX} WHERE hi IN (SELECT hi FROM {probe_name}) ORDER BY n"
        ).to_arrow_table()["n"]
    finally:
        con.unregister(_MATCH_PREFIX)
        con.unregister(probe_name)
    return table.take(found)


def _connection() -> duckdb.DuckDBPyConnection:
    """This thread's own DuckDB connection (a connection is not shared across threads)."""
    if not hasattr(_THREAD, "con"):
        _THREAD.con = duckdb.connect()
    return _THREAD.con


def _probed(parquet: pq.ParquetFile, groups: list[int], probe: pa.Array) -> pa.Table:
    """The probed rows of a few row groups: their `hi` first, whole rows only of the
    groups that hold a hit (most probes find none)."""
    hi = parquet.read_row_groups(groups, columns=["hi"])["hi"]
    found = pc.unique(pc.filter(hi, pc.is_in(hi, value_set=probe))).to_pylist()
    if not found:
        return parquet.schema_arrow.empty_table()
    return _hits(parquet.read_row_groups(_touched(parquet, sorted(found))), probe)


def _hits(table: pa.Table, probe: pa.Array) -> pa.Table:
    """The rows of a few row groups whose `hi` is in `probe`."""
    return table.filter(pc.is_in(table["hi"], value_set=probe))


def _touched(parquet: pq.ParquetFile, probe: list[int]) -> list[int]:
    """Row groups that may hold one of the sorted `probe` values: from the footer's
    GROUP_STARTS, else (files from before it) from each group's min/max of `hi`."""
    raw = (parquet.schema_arrow.metadata or {}).get(GROUP_STARTS)
    if raw is None:
        return _touched_by_statistics(parquet.metadata, probe)
    packed = base64.b64decode(raw)
    starts = pa.Array.from_buffers(
        pa.uint64(), len(packed) // 8, [None, pa.py_buffer(packed)]
    ).to_pylist()
    groups: set[int] = set()
    for value in probe:
        # a value equal to a group's first may also end the group before it
        last = bisect.bisect_right(starts, value) - 1
        groups.update(range(max(bisect.bisect_left(starts, value) - 1, 0), last + 1))
    return sorted(groups)


def _touched_by_statistics(metadata: pq.FileMetaData, probe: list[int]) -> list[int]:
    hi = metadata.schema.to_arrow_schema().get_field_index("hi")
    groups = []
    for n in range(metadata.num_row_groups):
        stats = metadata.row_group(n).column(hi).statistics
        if stats is None or not stats.has_min_max:
            groups.append(n)
            continue
        first = bisect.bisect_left(probe, stats.min)
        if first < len(probe) and probe[first] <= stats.max:
            groups.append(n)
    return groups


@contextmanager
def _opened(lake: Storage, info: ObjectInfo) -> Iterator[BinaryIO]:
    """A seekable reader of the object: the file itself on a local lake, else ranged reads
    (of the listed version), or one read of it whole when it is small: a micro-batch's key
    files and probe indexes are a few kB, and ranged reads of their footer, index blocks
    and row groups were a request each."""
    if isinstance(lake, LocalStorage):
        with pa.OSFile(str(lake.path(info.key))) as fh:  # read by Arrow, not through Python
            yield fh
    elif info.size <= WHOLE_READ_BYTES:
        yield io.BytesIO(lake.read_range(info.key, 0, info.size, info.etag or None))
    else:
        yield RangeFile(lake, info.key, info.size, info.etag or None)  # type: ignore[misc]


class _FileCache:
    """Whole key files read by this process, by (lake, key, listing version), least
    recently used dropped past CACHE_BYTES."""

    def __init__(self, limit: int) -> None:
        self.limit, self.size = limit, 0
        self.tables: OrderedDict[tuple[str, str, str], pa.Table] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, lake: Storage, info: ObjectInfo) -> pa.Table | None:
        if not info.etag:
            return None
        with self.lock:
            table = self.tables.get((lake.uri, info.key, info.etag))
            if table is not None:
                self.tables.move_to_end((lake.uri, info.key, info.etag))
            return table

    def put(self, lake: Storage, info: ObjectInfo, table: pa.Table) -> None:
        if not info.etag or table.nbytes > self.limit:
            return
        with self.lock:
            if self.tables.setdefault((lake.uri, info.key, info.etag), table) is not table:
                return  # another thread read it too
            self.size += table.nbytes
            while self.size > self.limit:
                _, dropped = self.tables.popitem(last=False)
                self.size -= dropped.nbytes


_CACHE = _FileCache(CACHE_BYTES)
_THREAD = threading.local()
_MATCH_PREFIX = "_dedup_key_files"  # the relations _matched registers on a connection
