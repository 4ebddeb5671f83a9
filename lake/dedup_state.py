"""What is already written, by dedup key, so later runs drop the duplicates of earlier ones.

Keys are kept as 128-bit MD5 halves (16 bytes a record) in one small Parquet file per
(event date, arrival hour): `_state/keys/<stream>/dt=<date>/<YYYYMMDDTHH>.parquet`, with
the output name of the object each key came from, so a full refresh of an object can take
its own keys out again. A run reads the files of the event dates inside the stream's
allowed lateness; older dates are deduplicated within the run only (and counted).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from lake.storage import Storage, local_path

SEEN_TABLE = "seen_keys"


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
    con.execute(
        f"INSERT INTO {SEEN_TABLE} SELECT hi, lo FROM read_parquet(?) "
        "WHERE obj NOT IN (SELECT obj FROM reprocessed_objects)",
        [paths],
    )


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
    scratch: Path,
) -> list[str]:
    """Merge the run's new keys (SQL giving dt, hi, lo, obj) into the hour's state files."""
    written = []
    _register_reprocessed(con, reprocessed)
    days = [
        r[0] for r in con.execute(f"SELECT DISTINCT dt FROM ({new_keys_sql}) ORDER BY 1").fetchall()
    ]
    for day in days:
        key = f"{state_prefix(stream, day)}{hour:%Y%m%dT%H}.parquet"
        merged = f"SELECT hi, lo, obj FROM ({new_keys_sql}) WHERE dt = DATE '{day}'"
        if lake.exists(key):
            old = local_path(lake, key, scratch)
            merged += (
                f" UNION ALL SELECT hi, lo, obj FROM read_parquet('{old}') "
                "WHERE obj NOT IN (SELECT obj FROM reprocessed_objects)"
            )
        out = scratch / f"keys-{day}.parquet"
        con.execute(f"COPY ({merged}) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
        lake.write(key, out.read_bytes())
        written.append(key)
    return written
