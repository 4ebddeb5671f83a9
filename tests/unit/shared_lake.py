"""Cleaned files shared by several objects, made from real cleaned rows as a cleaning pass
with tables makes them (lake.ledger's `shared` entries): the objects' own files are
read, their rows written one object after the other into one `layout.shared_file` per
event date, the shared files registered in the cleaned table in place of the own files
(one commit, replace by source key), the own files deleted and each manifest rewritten
to name its range of the shared file instead."""

from __future__ import annotations

import io
import json
from datetime import datetime

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.expressions import In

from lake import layout
from lake.iceberg.catalog import CLEANED, LakeTables
from lake.iceberg.commit import TableShape, commit_files
from lake.ledger import SharedPart, write_manifest
from lake.parquet_writing import parquet_bytes
from lake.storage import Storage


def manifests_by_key(lake: Storage, stream: str) -> dict[str, tuple[str, dict]]:
    """Source key -> (manifest key, manifest) of every manifest of the stream."""
    found = {}
    for info in lake.list(layout.ledger_folder(stream)):
        doc = json.loads(lake.read(info.key))
        found[doc["source_key"]] = (info.key, doc)
    return found


def share(
    lake: Storage,
    tables: LakeTables,
    stream: str,
    source_keys: list[str],
    hour: datetime,
    token: str = "0123456789ab",
) -> list[str]:
    """Move the cleaned rows of `source_keys` (in this order) into shared files of run
    `token`; returns the shared files' keys."""
    manifests = manifests_by_key(lake, stream)
    rows: dict[str, list[tuple[str, pa.Table]]] = {}  # shared file -> (sharer, rows)
    for source in source_keys:
        for key in manifests[source][1]["files"]:
            day = layout.cleaned_file_day(key)
            if day is not None:
                shared = layout.shared_file(stream, day, hour, token, 0)
                rows.setdefault(shared, []).append((source, _read(lake, key)))
    parts: dict[str, list[SharedPart]] = {}
    for shared, sharers in rows.items():
        first = 0
        for source, table in sharers:
            parts.setdefault(source, []).append(SharedPart(shared, first, table.num_rows))
            first += table.num_rows
        together = pa.concat_tables([t for _, t in sharers], promote_options="default")
        lake.write(shared, parquet_bytes(together, no_dictionary={"_position"}))
    commit_files(
        tables,
        CLEANED,
        stream,
        sorted(rows),
        TableShape(whole_stats=("_source_key",)),
        replace=In("_source_key", source_keys),
    )
    for source in source_keys:
        key, doc = manifests[source]
        own = [f for f in doc["files"] if layout.is_cleaned_file(f)]
        doc["files"] = [f for f in doc["files"] if f not in own]
        doc["shared"] = [p.as_manifest() for p in sorted(parts[source], key=lambda p: p.file)]
        write_manifest(lake, key, doc)
        for file in own:
            lake.delete(file)
    return sorted(rows)


def _read(lake: Storage, key: str) -> pa.Table:
    return pq.read_table(io.BytesIO(lake.read(key)))
