"""What is already written, by dedup key, so later runs drop the duplicates of earlier ones.

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
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from pyarrow.fs import LocalFileSystem

from lake.storage import Storage, compare_and_swap, local_path

SEEN_TABLE = "seen_keys"
KEYS_SCHEMA = pa.schema([("hi", pa.uint64()), ("lo", pa.uint64()), ("obj", pa.string())])


def state_prefix(stream: str, day: date) -> str:
    return f"_state/keys/{stream}/dt={day:%Y-%m-%d}/"


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
    """Fill `seen_keys(hi, lo)` with the keys already written for `days`, except those of
    objects being reprocessed now."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {SEEN_TABLE} (hi UBIGINT, lo UBIGINT)")
    paths = []
    for day in days:
        for info in lake.list(state_prefix(stream, day)):
            paths.append(str(local_path(lake, info.key, scratch)))
    if not paths:
        return
    _register_reprocessed(con, reprocessed)
    # a file list with an explicit local file system: every path is taken literally
    con.register("seen_files", ds.dataset(paths, KEYS_SCHEMA, "parquet", LocalFileSystem()))
    con.execute(
        f"INSERT INTO {SEEN_TABLE} SELECT hi, lo FROM seen_files "
        "WHERE obj NOT IN (SELECT obj FROM reprocessed_objects)"
    )
    con.unregister("seen_files")


def _register_reprocessed(con: duckdb.DuckDBPyConnection, reprocessed: set[str]) -> None:
    """`reprocessed_objects(obj)`: output names whose earlier keys no longer count."""
    con.register(
        "reprocessed_objects", pa.table({"obj": pa.array(sorted(reprocessed), pa.string())})
    )


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
        key = f"{state_prefix(stream, day)}{hour:%Y%m%dT%H}.parquet"
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
        con.register("old_keys", old_table)
        kept = con.sql(
            "SELECT hi, lo, obj FROM old_keys WHERE obj NOT IN (SELECT obj FROM reprocessed_objects)"
        ).to_arrow_table()
        con.unregister("old_keys")
        if new.num_rows == 0 and kept.num_rows == old_table.num_rows:
            return None
        parts.append(kept.cast(KEYS_SCHEMA))
    elif new.num_rows == 0:
        return None
    out = io.BytesIO()
    pq.write_table(pa.concat_tables(parts), out, compression="zstd")
    return out.getvalue()
