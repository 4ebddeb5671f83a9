"""Cleaning one arrival hour end to end: landed objects -> typed Parquet by event date.

The hour's new objects are cleaned in passes of about CLEAN_CHUNK_BYTES decompressed
(see lake.clean_pass; lake.object_fetch gunzips each object within its stream's cap first),
so memory stays flat however big the hour is or how far its objects expand; this module picks the
objects, runs the passes, saves the dedup keys and keeps the ledger. Output names are deterministic
from (arrival hour, source object), so a re-run rewrites the same files; a per-object
manifest under _state/cleaned/ is the ledger of processed objects (a micro-batch run
skips them) and lets a re-run remove files it no longer produces.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from lake.clean_pass import NEW_KEYS_TABLE, HourRun
from lake.clean_report import HourReport, ObjectCounts
from lake.crawler import sample_objects, stored_schema
from lake.dedup_state import load_seen, save_hour_keys, window_dates
from lake.firehose import is_folder_marker
from lake.object_fetch import LandedObject, fetch_objects
from lake.storage import ObjectInfo, ObjectNotFound, Storage
from lake.streams import StreamSpec

__all__ = ["HourReport", "clean_hour", "output_name", "processed_outputs"]

MEMORY_LIMIT = os.environ.get("CLEAN_MEMORY_LIMIT", "1GB")  # DuckDB spills to disk past it
# decompressed bytes a pass (an object larger than this is a pass of its own)
CHUNK_BYTES = int(os.environ.get("CLEAN_CHUNK_BYTES", str(128 << 20)))


def clean_hour(
    spec: StreamSpec,
    table: dict[str, Any] | None,
    landing: Storage,
    lake: Storage,
    hour: datetime,
    objects: list[ObjectInfo],
    ingested_at: datetime | None = None,
    full_refresh: bool = False,
) -> HourReport:
    """Clean the hour's objects not processed yet (all of them with full_refresh).

    Duplicates are dropped within the run (first in key order and position wins) and
    against the keys already written for event dates inside the allowed lateness.
    """
    report = HourReport()
    report.folder_markers = [o.key for o in objects if is_folder_marker(o.key, o.size)]
    objects = [o for o in objects if not is_folder_marker(o.key, o.size)]
    done = set() if full_refresh else processed_outputs(lake, spec.name, hour)
    todo = sorted((o for o in objects if output_name(hour, o.key) not in done), key=lambda o: o.key)
    report.objects_skipped = len(objects) - len(todo)
    if not todo:
        return report
    schema = stored_schema(table)
    if not schema.fields:  # no crawl yet: type from a sample, as the crawler would
        schema = sample_objects(spec, landing, todo).schema
        report.columns_not_in_catalog = {"added": list(schema.fields)}
    all_names = [output_name(hour, o.key) for o in todo]
    window = window_dates(hour, spec.allowed_lateness_hours)
    with tempfile.TemporaryDirectory(prefix="clean-") as tmp:
        con = duckdb.connect(config={"memory_limit": MEMORY_LIMIT, "temp_directory": tmp})
        try:
            con.execute("SET TimeZone = 'UTC'")
            run = HourRun(con, spec, landing, lake, hour, Path(tmp), report, schema, ingested_at)
            load_seen(con, lake, spec.name, window, set(all_names), run.scratch)
            cap = spec.max_object_expanded_bytes
            landed = fetch_objects(landing, todo, Path(tmp) / "landed", cap)
            for n, chunk in enumerate(_chunks(landed, CHUNK_BYTES)):
                run.clean_pass(chunk, [output_name(hour, o.key) for o in chunk], n)
                for o in chunk:
                    o.discard()
                pa.default_memory_pool().release_unused()  # the pass's Arrow buffers
            new_keys = f"SELECT * FROM {NEW_KEYS_TABLE}"
            save_hour_keys(con, lake, spec.name, hour, new_keys, set(all_names), run.scratch)
            report.late_beyond_allowed = con.execute(
                f"SELECT count(*) FROM {NEW_KEYS_TABLE} WHERE dt < ?", [window[0]]
            ).fetchall()[0][0]
        finally:
            con.close()
    for info, name in zip(todo, all_names, strict=True):
        report.add(info, run.per_object[name])
        # without full_refresh the object had no manifest (the ledger said so): none to read
        _replace_manifest(lake, spec, info.key, name, run.per_object[name], full_refresh)
    return report


def _chunks(objects: Iterable[LandedObject], max_bytes: int) -> Iterator[list[LandedObject]]:
    """Consecutive runs of objects of about max_bytes decompressed, each handed over as
    soon as it is full (the objects after it are fetched meanwhile)."""
    chunk: list[LandedObject] = []
    size = 0
    for landed in objects:
        if chunk and size + landed.expanded_bytes > max_bytes:
            yield chunk
            chunk, size = [], 0
        chunk.append(landed)
        size += landed.expanded_bytes
    if chunk:
        yield chunk


def output_name(hour: datetime, source_key: str) -> str:
    stem = source_key.rsplit("/", 1)[-1].removesuffix(".gz")
    return f"{hour:%Y%m%dT%H}-{stem}.parquet"


def manifest_prefix(stream: str, hour: datetime) -> str:
    return f"_state/cleaned/{stream}/{hour:%Y%m%dT%H}-"


def processed_outputs(lake: Storage, stream: str, hour: datetime) -> set[str]:
    """The ledger: output names (see output_name) of the hour's objects an earlier run
    processed. A listing, no reads: the manifest's key carries the name."""
    prefix = f"_state/cleaned/{stream}/"
    return {
        info.key.removeprefix(prefix).removesuffix(".json")
        for info in lake.list(manifest_prefix(stream, hour))
    }


def _replace_manifest(
    lake: Storage,
    spec: StreamSpec,
    source_key: str,
    name: str,
    counts: ObjectCounts,
    may_exist: bool,
) -> None:
    manifest_key = f"_state/cleaned/{spec.name}/{name}.json"
    previous = []
    if may_exist:
        with contextlib.suppress(ObjectNotFound):
            previous = json.loads(lake.read(manifest_key))["files"]
    for stale in set(previous) - set(counts.files):
        with contextlib.suppress(ObjectNotFound):
            lake.delete(stale)
    manifest = {
        "source_key": source_key,
        "files": counts.files,
        "records_in": counts.records_in,
        "records_cleaned": counts.records_cleaned,
        "records_quarantined": counts.records_quarantined,
        "duplicates_dropped": counts.duplicates_dropped,
    }
    lake.write(manifest_key, json.dumps(manifest, indent=1).encode())
