"""A chunk of a parallel run (lake.cleaning.parallel) cleaned on a Pipes worker, handed back.

The worker writes what it held back for the run's one commit (HeldCommit.held: each hour's
keys, files and ledger writes; the event time's column), its hours' reports and the keys
it kept, to a file the run named in its own temporary folder; the run's step reads it
when the worker has exited. It is a pickle: written by the project's own worker, read
from a local folder no one else writes, never from the landing zone or the lake (so not
for ECS tasks, whose only shared place is the lake's bucket). The ledger writes are
partials of lake.ledger.replace_manifest bound to the worker's lake; they travel without
it and are bound to the step's.
"""

from __future__ import annotations

import pickle
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa

from lake.cleaning.parallel import HeldCommit
from lake.cleaning.report import HourReport
from lake.ledger import replace_manifest
from lake.storage import ObjectInfo, Storage

FORMAT = 1


def dump_chunk(
    path: Path, reports: dict[datetime, HourReport], keys: pa.Table, held: HeldCommit
) -> None:
    """Write a worker's chunk for load_chunk."""
    hours = {hour: _portable(parts) for hour, parts in held.held.items()}
    doc = {"format": FORMAT, "reports": reports, "keys": keys, "held": hours}
    path.write_bytes(pickle.dumps({**doc, "event_column": held.event_column}))


def load_chunk(path: Path, held: HeldCommit) -> tuple[dict[datetime, HourReport], pa.Table]:
    """A worker's chunk (dump_chunk): its held hours go to `held` (bound to its lake)."""
    doc = pickle.loads(path.read_bytes())  # noqa: S301 - the run's own worker wrote it
    if doc.get("format") != FORMAT:
        raise ValueError(f"{path}: a chunk of another format ({doc.get('format')!r})")
    assert held.lake is not None
    held.held = {hour: _bound(parts, held.lake) for hour, parts in doc["held"].items()}
    held.event_column = doc["event_column"]
    return doc["reports"], doc["keys"]


def _portable(parts: tuple[Any, ...]) -> tuple[Any, ...]:
    *plain, writes = parts
    return (*plain, [_write_args(w) for w in writes])


def _write_args(write: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if not (isinstance(write, partial) and write.func is replace_manifest):
        raise TypeError(f"a ledger write that cannot travel: {write!r}")
    return write.args[1:], write.keywords  # args[0]: the worker's lake


def _bound(parts: tuple[Any, ...], lake: Storage) -> tuple[Any, ...]:
    *plain, writes = parts
    return (*plain, [partial(replace_manifest, lake, *args, **kw) for args, kw in writes])


def batches_doc(batches: dict[datetime, list[ObjectInfo]]) -> dict[str, list[list[Any]]]:
    """A chunk's objects by hour as JSON for a worker's extras (batches_of reads it)."""
    return {
        hour.isoformat(): [[o.key, o.size, o.last_modified.isoformat(), o.etag] for o in objs]
        for hour, objs in batches.items()
    }


def batches_of(doc: dict[str, list[list[Any]]]) -> dict[datetime, list[ObjectInfo]]:
    return {
        datetime.fromisoformat(hour): [
            ObjectInfo(key, size, datetime.fromisoformat(modified), etag)
            for key, size, modified, etag in objs
        ]
        for hour, objs in doc.items()
    }
