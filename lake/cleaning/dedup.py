"""Deduplication: a record whose dedup key was kept earlier is dropped.

Earlier means first in (object, position) order within the run, or kept by an earlier
run: what is already written is kept by dedup key, so later runs drop the duplicates of
earlier ones.

Keys are kept as 128-bit MD5 halves (16 bytes a record) in one small Parquet file per
(event date, arrival hour): `_state/keys/<stream>/dt=<date>/<YYYYMMDDTHH>.parquet`, with
the output name of the object each key came from, so a full refresh of an object (or a
new version of it) can take its own keys out again. An hour's first run writes the hour
file (compare-and-swap, so two writers of one hour never lose each other's keys); every
later run writes its keys to a run file of its own that names the objects whose earlier
keys it replaces, folded into the hour file every few runs (lake.cleaning.run_keys): a
micro-batch's save costs its own keys, not the hour's. A run checks
its keys against the files of the event dates inside the stream's allowed lateness;
older dates are deduplicated within the run only (and counted).

Probe, don't load: each pass asks the window's key files for its own keys only
(lake.cleaning.key_files.KeyWindow). The files are sorted by key in row groups of 2,048
rows, and at a run's end (lake.cleaning.commit) each date it wrote keys for has its hour
files merged into one compacted file once four of them are not in it, so a 100-key pass
reads, per date, the compacted file's probe index (a head and a bucket a key) and the few
hour files outside it, whatever the window holds (lake.cleaning.key_index), and a
large pass (a backfill hour) reads each file whole once per process (cached by version).
The hits (a few rows) then meet the pass's keys in DuckDB, with the keys the run kept in
its earlier passes (NEW_KEYS: each key with its object's run-wide index, not its name: 24
bytes a key; the names come back as a dictionary when the hour files are written). Measured in bench/README.md "Dedup probe (issue 15)" and
"Dedup off the backfill's hot path (issue 15)".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from lake.cleaning.key_files import NAMES_ENCODED, KeyWindow
from lake.cleaning.run_keys import save_keys
from lake.cleaning.tables import FIRSTS, NEW_KEYS, ROW_SPAN, SEEN_KEYS
from lake.cleaning.typed import Typed
from lake.storage import Storage

FETCH_ROWS = 1 << 20  # keys fetched from DuckDB (and their names encoded) at a time


def window_dates(hour: datetime, lateness_hours: int) -> list[date]:
    """Event dates whose earlier keys a run for `hour` checks against."""
    first = (hour - timedelta(hours=lateness_hours)).date()
    last = (hour + timedelta(hours=1)).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def create_new_keys(con: duckdb.DuckDBPyConnection) -> str:
    """The empty NEW_KEYS (dt, hi, lo, o) the run's passes add the keys they keep to; `o`
    is the key's object's index among the run's objects (CleaningRun.names)."""
    con.execute(f"CREATE TEMP TABLE {NEW_KEYS} (dt DATE, hi UBIGINT, lo UBIGINT, o INTEGER)")
    return NEW_KEYS


@dataclass(frozen=True)
class Deduped:
    """What dedup made of a pass's TYPED records: FIRSTS (narrow: hi, lo, _object, rid,
    dt, copies) lists the records kept; `dropped` holds the row ids (object * ROW_SPAN +
    position) of the others, None when there are none."""

    dropped: pa.Array | None
    relation: str = FIRSTS


def drop_duplicates(con: duckdb.DuckDBPyConnection, records: Typed, window: KeyWindow) -> Deduped:
    """Drop the clean records of `records` whose dedup key came earlier in (object, position)
    order in this run or is in `window`'s key files."""
    rid = f"_object * {ROW_SPAN} + _position"
    typed = records.relation
    clean = (
        f"SELECT {rid} AS rid, _dt, _key_hi AS hi, _key_lo AS lo FROM {typed} WHERE _reason IS NULL"
    )
    # counting the pass's distinct keys costs half the GROUP BY that finds each key's first
    # record, which a pass without copies (the usual one) then does without
    rows, keys = con.execute(
        f"SELECT (SELECT count(*) FROM ({clean})), "
        f"(SELECT count(*) FROM (SELECT DISTINCT hi, lo FROM ({clean})))"
    ).fetchall()[0]
    copies = rows > keys
    if copies:  # a record's object is its row id's high half
        firsts = f"""
            SELECT hi, lo, rid // {ROW_SPAN} AS _object, rid, dt, copies
            FROM (SELECT hi, lo, min(rid) AS rid, arg_min(_dt, rid) AS dt, count(*) AS copies
                  FROM ({clean}) GROUP BY hi, lo)"""
    else:
        firsts = f"""
            SELECT hi, lo, rid // {ROW_SPAN} AS _object, rid, _dt AS dt, 1::BIGINT AS copies
            FROM ({clean})"""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {FIRSTS} AS {firsts}")
    found = window.hits(con.sql(f"SELECT hi FROM {FIRSTS}").to_arrow_table(), con)
    con.register(SEEN_KEYS, found)
    # the pass's keys kept before: in the window's files or by the run's earlier passes.
    # A semi join hashes the smaller side (the pass's keys), not NEW_KEYS (the run's, 7M in
    # the 2 GB hour), which an EXISTS hashed anew for every pass
    seen_keys = con.sql(
        f"""
        SELECT DISTINCT hi, lo
        FROM (SELECT hi, lo FROM {SEEN_KEYS} UNION ALL SELECT hi, lo FROM {NEW_KEYS}) s
        SEMI JOIN {FIRSTS} f ON s.hi = f.hi AND s.lo = f.lo
        """
    ).to_arrow_table()
    con.register(SEEN_KEYS, seen_keys)
    if not copies and not seen_keys.num_rows:
        return Deduped(None)  # nothing to drop (the usual micro-batch)
    seen = f"EXISTS (SELECT 1 FROM {SEEN_KEYS} s WHERE s.hi = {FIRSTS}.hi AND s.lo = {FIRSTS}.lo)"
    dropped = con.sql(
        f"""
        SELECT k.rid
        FROM ({clean}) k
        JOIN (SELECT hi, lo, rid FROM {FIRSTS} WHERE copies > 1) f
            ON f.hi = k.hi AND f.lo = k.lo AND k.rid <> f.rid
        UNION ALL SELECT rid FROM {FIRSTS} WHERE {seen}
        """
    ).to_arrow_table()["rid"]
    con.execute(f"DELETE FROM {FIRSTS} WHERE {seen}")
    return Deduped(dropped.combine_chunks() if len(dropped) else None)


def keep_keys(con: duckdb.DuckDBPyConnection, deduped: Deduped, first: int) -> set[date]:
    """Add the kept records' keys to NEW_KEYS (the passes after this one check against
    them too), the pass's object n as the run's object `first` + n; return their event
    dates."""
    kept = deduped.relation
    con.execute(f"INSERT INTO {NEW_KEYS} SELECT dt, hi, lo, _object + ? AS o FROM {kept}", [first])
    return {d for (d,) in con.execute(f"SELECT DISTINCT dt FROM {kept}").fetchall()}


def save_hour_keys(
    con: duckdb.DuckDBPyConnection,
    lake: Storage,
    stream: str,
    hour: datetime,
    new_keys_sql: str,
    names: pa.Array,
    reprocessed: set[str],
    stale_days: Iterable[date] = (),
) -> list[str]:
    """Save the run's new keys (SQL giving dt, hi, lo, o: the index of the key's object's
    output name in `names`) for the hour, the earlier keys of reprocessed objects replaced;
    `stale_days` are event dates that may hold such keys though this run wrote none for
    them. Each date's keys go to the hour file when it has none yet, else to a run file of
    their own (lake.cleaning.run_keys): O(run), whatever the hour holds. The dates are
    compacted at the run's end, not here (lake.cleaning.key_files.compact_due). The keys
    written, in the order saved."""
    return save_hours_keys(
        con,
        lake,
        stream,
        [hour],
        f"SELECT 0 AS h, dt, hi, lo, o FROM ({new_keys_sql}) ORDER BY dt, hi, lo",
        names,
        {hour: reprocessed},
        {hour: set(stale_days)},
    )


def save_hours_keys(
    con: duckdb.DuckDBPyConnection,
    lake: Storage,
    stream: str,
    hours: list[datetime],
    run_keys_sql: str,
    names: pa.Array,
    reprocessed: dict[datetime, set[str]],
    stale_days: dict[datetime, set[date]],
) -> list[str]:
    """save_hour_keys for each of a run's `hours`, from one scan of their keys:
    `run_keys_sql` gives (h, dt, hi, lo, o) ordered by h, dt (best by hi, lo too: each
    date's key file is then not sorted again), h being the hour's index in `hours`. An
    hour costs its key files' writes, not queries of its own (a month of small hours' largest
    per-hour cost in DuckDB was two an hour). Each date's keys are saved as soon as the scan
    has them all. The keys written, in the order saved."""
    gone = {hour: pa.array(sorted(reprocessed[hour]), pa.string()) for hour in hours}
    saved: set[tuple[int, date]] = set()
    written = []
    for n, day, new in _hour_day_keys(con, run_keys_sql, names):
        if (key := save_keys(lake, stream, day, hours[n], new, gone[hours[n]])) is not None:
            written.append(key)
        saved.add((n, day))
    for n, hour in enumerate(hours):  # dates that may hold earlier keys, with no new ones
        for day in sorted(d for d in stale_days[hour] if (n, d) not in saved):
            empty = NAMES_ENCODED.empty_table()
            if (key := save_keys(lake, stream, day, hour, empty, gone[hour])) is not None:
                written.append(key)
    return written


def _hour_day_keys(
    con: duckdb.DuckDBPyConnection, run_keys_sql: str, names: pa.Array
) -> Iterator[tuple[int, date, pa.Table]]:
    """The keys of `run_keys_sql` (h, dt, hi, lo, o in (h, dt) order at least) as (h, dt, its
    keys as NAMES_ENCODED), streamed: one date's keys are held at a time, each batch's `obj`
    a dictionary of the names it uses (an hour's millions of keys name a few hundred
    objects). The batches come narrow from DuckDB: a join to the names, or the names
    themselves, made it hold the whole result (~500 MB in the 2 GB hour)."""
    at: tuple[int, date] | None = None
    parts: list[pa.RecordBatch] = []
    for batch in con.sql(run_keys_sql).to_arrow_reader(FETCH_ROWS):
        # one int64 a row for (h, dt), so each (h, dt) is a run of equal values
        combined = pc.add(
            pc.multiply(batch["h"].cast(pa.int64()), 1 << 32),
            batch["dt"].cast(pa.int32()).cast(pa.int64()),
        )
        start = 0
        for end in pc.run_end_encode(combined).run_ends.to_pylist():
            part = batch.slice(start, end - start)
            start = end
            here = (part["h"][0].as_py(), part["dt"][0].as_py())
            if here != at and parts:
                yield (*at, pa.Table.from_batches(parts, NAMES_ENCODED))  # type: ignore[misc]
                parts = []
            at = here
            parts.append(_named_batch(part, names))
    if parts:
        yield (*at, pa.Table.from_batches(parts, NAMES_ENCODED))  # type: ignore[misc]


def _named_batch(batch: pa.RecordBatch, names: pa.Array) -> pa.RecordBatch:
    used = pc.unique(batch["o"])
    positions = pc.index_in(batch["o"], value_set=used).cast(pa.int32())
    obj = pa.DictionaryArray.from_arrays(positions, names.take(used))
    return pa.record_batch([batch["hi"], batch["lo"], obj], schema=NAMES_ENCODED)
