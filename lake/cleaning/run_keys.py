"""A run's dedup keys saved in O(run): a file of its own beside the hour file, folded in later.

An arrival hour's keys for an event date live in its hour file (`layout.dedup_keys_file`,
lake.cleaning.key_files) and in run files under the hour's run folder
(`layout.dedup_run_keys_file`): the first run of an hour writes the hour file, every later
one writes its keys as a new file (a plain write of a new key, whatever the hour holds)
whose footer names the objects whose earlier keys it replaces (REPLACES: the objects the
run reprocessed, its own objects always among them). Once FOLD_AT run files wait, the run
that wrote the last one folds them into the hour file by compare-and-swap, then deletes
them; the hour file is thus rewritten once per FOLD_AT runs instead of every run.

Reading (lake.cleaning.key_files.day_keys): the hour files' rows (or the compacted file's),
then each run file in name (write) order, each first taking out of the rows before it
those of the objects it replaces. A fold applies the same steps, so a run file folded
again (a reader finding it and the hour file that folded it, a fold racing another) gives
the same rows: its own objects' rows are taken out and put back. A run file that vanishes
while read was folded meanwhile: the reader reads the date again.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from datetime import date, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake import layout
from lake.cleaning.key_files import (
    KEYS_SCHEMA,
    NAMES_ENCODED,
    REPLACES,
    key_file_bytes,
    replaced,
    replaces_of,
)
from lake.storage import (
    ConcurrentUpdateError,
    ObjectInfo,
    ObjectNotFound,
    Storage,
    compare_and_swap,
)

FOLD_AT = 8  # run files an hour keeps for a date before a run folds them into its hour file
RACES = 5  # folds that may lose a run file to a racing fold before giving up


def save_keys(
    lake: Storage, stream: str, day: date, hour: datetime, new: pa.Table, gone: pa.Array
) -> str | None:
    """Save the run's keys `new` (NAMES_ENCODED) of an hour and date, the earlier keys of
    the objects `gone` (and of `new`'s) replaced; the key written (None: nothing to do)."""
    hour_key = layout.dedup_keys_file(stream, day, hour)
    if not lake.exists(hour_key):
        written = compare_and_swap(lake, hour_key, lambda old: _hour_bytes(old, [(new, gone)]))
        return None if written is None else hour_key
    if new.num_rows == 0 and len(gone) == 0:
        return None
    own = [chunk.dictionary for chunk in new["obj"].chunks]
    names = pc.unique(pa.concat_arrays([gone.cast(pa.string()), *own]))
    metadata = {REPLACES: json.dumps(sorted(names.to_pylist())).encode()}
    stamp = f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"
    key = layout.dedup_run_keys_file(stream, day, hour, stamp)
    lake.write(key, key_file_bytes(new, metadata, schema=KEYS_SCHEMA))
    if len(run_files(lake, stream, day, hour)) >= FOLD_AT:
        fold(lake, stream, day, hour)
    return key


def run_files(lake: Storage, stream: str, day: date, hour: datetime) -> list[ObjectInfo]:
    """The hour's run files for the date, in write order."""
    folder = layout.dedup_run_keys_folder(stream, day, hour)
    return sorted((i for i in lake.list(folder) if i.key.endswith(".parquet")), key=lambda i: i.key)


def fold(lake: Storage, stream: str, day: date, hour: datetime) -> bool:
    """Fold the hour's run files for the date into its hour file (compare-and-swap), then
    delete them; whether it wrote."""
    hour_key = layout.dedup_keys_file(stream, day, hour)
    for _ in range(RACES):
        runs = run_files(lake, stream, day, hour)
        if not runs:
            return False
        try:
            steps = [_run_step(lake, info) for info in runs]
        except ObjectNotFound:
            continue  # a racing fold took it: list again
        compare_and_swap(lake, hour_key, lambda old, steps=steps: _hour_bytes(old, steps))
        for info in runs:
            lake.discard(info.key)
        return True
    raise ConcurrentUpdateError(f"{lake.uri_of(hour_key)}: run files kept vanishing")


def fold_day(lake: Storage, stream: str, day: date) -> list[str]:
    """Fold every hour's run files of the date; the hour folders folded."""
    folder = layout.dedup_keys_folder(stream, day)
    hours = sorted(
        {
            i.key[len(folder) :].split("/", 1)[0]
            for i in lake.list(folder)
            if "/" in i.key[len(folder) :]
        }
    )
    folded = []
    for name in hours:
        try:
            hour = datetime.strptime(name + "+0000", "%Y%m%dT%H%z")
        except ValueError:
            continue  # not a run folder
        if fold(lake, stream, day, hour):
            folded.append(name)
    return folded


def _run_step(lake: Storage, info: ObjectInfo) -> tuple[pa.Table, pa.Array]:
    table = pq.read_table(pa.BufferReader(lake.read(info.key)), read_dictionary=["obj"])
    return table.select(KEYS_SCHEMA.names), replaces_of(table)


def _hour_bytes(old: bytes | None, steps: Iterable[tuple[pa.Table, pa.Array]]) -> bytes | None:
    """The hour file's content after `steps` (keys, objects replaced), each applied as a
    reader applies a run file; None when nothing would change."""
    rows = NAMES_ENCODED.empty_table()
    if old is not None:
        rows = pq.read_table(pa.BufferReader(old), read_dictionary=["obj"])
        rows = rows.select(KEYS_SCHEMA.names).cast(NAMES_ENCODED)
    before = rows.num_rows
    added = 0
    for keys, gone in steps:
        rows = replaced(rows, gone)
        rows = pa.concat_tables([rows, keys.cast(NAMES_ENCODED)])
        added += keys.num_rows
    if added == 0 and rows.num_rows == before:
        return None
    return key_file_bytes(rows, schema=KEYS_SCHEMA)
