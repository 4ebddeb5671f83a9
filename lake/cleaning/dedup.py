"""Deduplication: a record whose dedup key was kept earlier is dropped.

Earlier means first in (object, position) order within the run, or kept by an earlier
run: what is already written is kept by dedup key, so later runs drop the duplicates of
earlier ones.

Keys are kept as 128-bit MD5 halves (16 bytes a record) in one small Parquet file per
(event date, arrival hour): `_state/keys/<stream>/dt=<date>/<YYYYMMDDTHH>.parquet`, with
the output name of the object each key came from, so a full refresh of an object (or a
new version of it) can take its own keys out again. A run reads the files of the event
dates inside the stream's allowed lateness; older dates are deduplicated within the run
only (and counted).

Files reach DuckDB as Arrow data (pyarrow reads them by literal path), never as a path
DuckDB would expand as a glob; each hour file is merged by compare-and-swap, so two
writers of one hour never lose each other's keys.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from pyarrow.fs import LocalFileSystem

from lake import layout
from lake.cleaning.tables import (
    FIRSTS,
    NEW_KEYS,
    OLD_KEYS,
    REPROCESSED,
    ROW_SPAN,
    SEEN_FILES,
    SEEN_KEYS,
)
from lake.cleaning.typed import Typed
from lake.storage import Storage, compare_and_swap, local_path

KEYS_SCHEMA = pa.schema([("hi", pa.uint64()), ("lo", pa.uint64()), ("obj", pa.string())])


def window_dates(hour: datetime, lateness_hours: int) -> list[date]:
    """Event dates whose earlier keys a run for `hour` checks against."""
    first = (hour - timedelta(hours=lateness_hours)).date()
    last = (hour + timedelta(hours=1)).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def load_seen(
    con: duckdb.DuckDBPyConnection,
    lake: Storage,
    stream: str,
    days: list[date],
    reprocessed: set[str],
    scratch: Path,
) -> None:
    """Fill SEEN_KEYS (hi, lo) with the keys already written for `days`, except those of
    objects being reprocessed now."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {SEEN_KEYS} (hi UBIGINT, lo UBIGINT)")
    paths = []
    for day in days:
        for info in lake.list(layout.dedup_keys_folder(stream, day)):
            paths.append(str(local_path(lake, info.key, scratch)))
    if not paths:
        return
    _register_reprocessed(con, reprocessed)
    # a file list with an explicit local file system: every path is taken literally
    con.register(SEEN_FILES, ds.dataset(paths, KEYS_SCHEMA, "parquet", LocalFileSystem()))
    con.execute(
        f"INSERT INTO {SEEN_KEYS} SELECT hi, lo FROM {SEEN_FILES} "
        f"WHERE obj NOT IN (SELECT obj FROM {REPROCESSED})"
    )
    con.unregister(SEEN_FILES)


def create_new_keys(con: duckdb.DuckDBPyConnection) -> str:
    """The empty NEW_KEYS (dt, hi, lo, obj) the run's passes add the keys they keep to."""
    con.execute(f"CREATE TEMP TABLE {NEW_KEYS} (dt DATE, hi UBIGINT, lo UBIGINT, obj VARCHAR)")
    return NEW_KEYS


@dataclass(frozen=True)
class Deduped:
    """What dedup made of a pass's TYPED records: FIRSTS (narrow: hi, lo, _object, rid,
    dt, copies) lists the records kept; `dropped` holds the row ids (object * ROW_SPAN +
    position) of the others, None when there are none."""

    dropped: pa.Array | None
    relation: str = FIRSTS


def drop_duplicates(con: duckdb.DuckDBPyConnection, records: Typed) -> Deduped:
    """Drop the clean records of `records` whose dedup key came earlier in (object, position)
    order in this run or is among SEEN_KEYS."""
    rid = f"_object * {ROW_SPAN} + _position"
    typed = records.relation
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {FIRSTS} AS
        SELECT hi, lo, arg_min(_object, rid) AS _object, min(rid) AS rid,
               arg_min(_dt, rid) AS dt, count(*) AS copies
        FROM (SELECT _object, {rid} AS rid, _dt, _key_hi AS hi, _key_lo AS lo
              FROM {typed} WHERE _reason IS NULL)
        GROUP BY hi, lo
        """
    )
    copies, seen_keys = con.execute(
        f"SELECT (SELECT max(copies) FROM {FIRSTS}), (SELECT count(*) FROM {SEEN_KEYS})"
    ).fetchall()[0]
    if (copies or 0) <= 1 and not seen_keys:
        return Deduped(None)  # nothing to drop (the usual first run of an hour)
    seen = f"EXISTS (SELECT 1 FROM {SEEN_KEYS} s WHERE s.hi = {FIRSTS}.hi AND s.lo = {FIRSTS}.lo)"
    dropped = con.sql(
        f"""
        SELECT k.rid
        FROM (SELECT {rid} AS rid, _key_hi AS hi, _key_lo AS lo FROM {typed} WHERE _reason IS NULL) k
        JOIN (SELECT hi, lo, rid FROM {FIRSTS} WHERE copies > 1) f
            ON f.hi = k.hi AND f.lo = k.lo AND k.rid <> f.rid
        UNION ALL SELECT rid FROM {FIRSTS} WHERE {seen}
        """
    ).to_arrow_table()["rid"]
    con.execute(f"DELETE FROM {FIRSTS} WHERE {seen}")
    return Deduped(dropped.combine_chunks() if len(dropped) else None)


def keep_keys(con: duckdb.DuckDBPyConnection, deduped: Deduped, objects: str) -> set[date]:
    """Add the kept records' keys to NEW_KEYS (named by `objects`' output names) and to
    SEEN_KEYS (for the passes after this one); return their event dates."""
    kept = deduped.relation
    con.execute(
        f"INSERT INTO {NEW_KEYS} "
        f"SELECT dt, hi, lo, o._name AS obj FROM {kept} JOIN {objects} o USING (_object)"
    )
    con.execute(f"INSERT INTO {SEEN_KEYS} SELECT hi, lo FROM {kept}")
    return {d for (d,) in con.execute(f"SELECT DISTINCT dt FROM {kept}").fetchall()}


def kept_before(con: duckdb.DuckDBPyConnection, day: date) -> int:
    """How many of the run's kept records have an event date before `day`."""
    return con.execute(f"SELECT count(*) FROM {NEW_KEYS} WHERE dt < ?", [day]).fetchall()[0][0]


def _register_reprocessed(con: duckdb.DuckDBPyConnection, reprocessed: set[str]) -> None:
    """REPROCESSED (obj): output names whose earlier keys no longer count."""
    con.register(REPROCESSED, pa.table({"obj": pa.array(sorted(reprocessed), pa.string())}))


def save_hour_keys(
    con: duckdb.DuckDBPyConnection,
    lake: Storage,
    stream: str,
    hour: datetime,
    new_keys_sql: str,
    reprocessed: set[str],
    stale_days: Iterable[date] = (),
) -> list[str]:
    """Merge the run's new keys (SQL giving dt, hi, lo, obj) into the hour's state files,
    dropping the earlier keys of reprocessed objects; `stale_days` are event dates that
    may hold such keys though this run wrote none for them."""
    written = []
    _register_reprocessed(con, reprocessed)
    days = {
        r[0] for r in con.execute(f"SELECT DISTINCT dt FROM ({new_keys_sql})").fetchall()
    } | set(stale_days)
    for day in sorted(days):
        key = layout.dedup_keys_file(stream, day, hour)
        new = con.sql(
            f"SELECT hi, lo, obj FROM ({new_keys_sql}) WHERE dt = ?", params=[day]
        ).to_arrow_table()
        if compare_and_swap(lake, key, lambda old, new=new: _merged(con, old, new)) is not None:
            written.append(key)
    return written


def _merged(con: duckdb.DuckDBPyConnection, old: bytes | None, new: pa.Table) -> bytes | None:
    """The hour file's new content: the new keys and the old file's keys of objects not
    reprocessed; None when nothing would change."""
    parts = [new.select(KEYS_SCHEMA.names).cast(KEYS_SCHEMA)]
    if old is not None:
        old_table = pq.read_table(pa.BufferReader(old))
        con.register(OLD_KEYS, old_table)
        kept = con.sql(
            f"SELECT hi, lo, obj FROM {OLD_KEYS} WHERE obj NOT IN (SELECT obj FROM {REPROCESSED})"
        ).to_arrow_table()
        con.unregister(OLD_KEYS)
        if new.num_rows == 0 and kept.num_rows == old_table.num_rows:
            return None
        parts.append(kept.cast(KEYS_SCHEMA))
    elif new.num_rows == 0:
        return None
    out = io.BytesIO()
    pq.write_table(pa.concat_tables(parts), out, compression="zstd")
    return out.getvalue()
