"""A chunk of a parallel run (lake.cleaning.parallel) cleaned on a Pipes worker, handed back
through the lake, so a worker that shares nothing else with the run's step (an ECS task)
can hand it back as a subprocess does.

The worker writes, under the run's folder `_state/chunks/<stream>/<run token>/<first hour>/`
(lake.layout.chunk_handoff_folder), the keys it kept as `keys.parquet`, then `chunk.json`:
its hours' reports, what it held back for the run's one commit (HeldCommit.held: each
hour's keys, files and ledger writes, as the arguments of lake.ledger.replace_manifest)
and the event time's column. The step reads them once the worker has exited and binds
the ledger writes to its own lake. Nothing is unpickled or evaluated: the documents are
plain JSON and Parquet, read field by field against what the step asked the chunk to do
(its hours, objects, stream and run token; files inside the stream's folders; the keys'
digest), and anything else is refused (HandoffError: the step fails, nothing is
committed). The step deletes its run's folder when the run ends; a folder a killed step
left is named by a token no other run uses, so nothing reads it (docs/operations.md:
cleanup).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from dataclasses import fields
from datetime import datetime
from functools import partial
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake import layout
from lake.cleaning.parallel import HeldCommit
from lake.cleaning.peers import KEPT_SCHEMA
from lake.cleaning.report import HourReport, ObjectCounts
from lake.ledger import SharedPart, TypedAs, output_name, replace_manifest, shared_parts
from lake.storage import ObjectInfo, ObjectNotFound, Storage, UnsafeKeyError, check_key

FORMAT = 3  # 3: a ledger write's counts carry the object's parts of shared files
DOC = "chunk.json"  # written last: a chunk is handed back once it is there
KEYS = "keys.parquet"
_COUNTS = ("records_in", "records_cleaned", "records_quarantined", "duplicates_dropped")
_REPORT_FIELDS = tuple(f.name for f in fields(HourReport) if f.name != "commits")
_WRITE_ARGS = ("info", "name", "counts", "earlier", "earlier_files", "typed_as", "delete_stale")

Batches = dict[datetime, list[ObjectInfo]]


class HandoffError(ValueError):
    """A chunk's handoff the step cannot take: missing, truncated, altered or not the
    chunk it asked for."""


def dump_chunk(
    lake: Storage,
    folder: str,
    reports: dict[datetime, HourReport],
    keys: pa.Table,
    held: HeldCommit,
) -> int:
    """Write a worker's chunk under `folder` of the lake for load_chunk; returns its bytes."""
    sink = io.BytesIO()
    pq.write_table(keys.cast(KEPT_SCHEMA), sink, compression="zstd")
    keys_bytes = sink.getvalue()
    doc = {
        "format": FORMAT,
        "stream": held.spec.name,
        "token": held.token,
        "event_column": held.event_column,
        "keys": {"sha256": hashlib.sha256(keys_bytes).hexdigest(), "rows": keys.num_rows},
        "reports": {hour.isoformat(): _report_doc(r) for hour, r in reports.items()},
        "held": {hour.isoformat(): _hour_doc(parts) for hour, parts in held.held.items()},
    }
    doc_bytes = json.dumps(doc, separators=(",", ":")).encode()
    lake.write(folder + KEYS, keys_bytes)
    lake.write(folder + DOC, doc_bytes)
    return len(keys_bytes) + len(doc_bytes)


def load_chunk(
    lake: Storage, folder: str, held: HeldCommit, batches: Batches
) -> tuple[dict[datetime, HourReport], pa.Table]:
    """The chunk of `batches` a worker handed back under `folder` (dump_chunk): its held
    hours go to `held`, their ledger writes bound to the step's lake."""
    where = handoff_uri(lake, folder)
    try:
        doc = json.loads(_read(lake, folder + DOC))
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise HandoffError(f"not a chunk of format {FORMAT}")
        if (doc.get("stream"), doc.get("token")) != (held.spec.name, held.token):
            raise HandoffError("the chunk of another stream or run")
        assert held.lake is not None
        chunk = _Chunk(held.spec.name, batches, held.lake)
        keys = chunk.keys(_read(lake, folder + KEYS), doc["keys"])
        reports = {chunk.hour(h): _report_of(r) for h, r in _dict(doc["reports"]).items()}
        hours = {
            chunk.hour(h): chunk.held_hour(h, parts) for h, parts in _dict(doc["held"]).items()
        }
        event_column = doc["event_column"]
        if not (event_column is None or isinstance(event_column, str)):
            raise HandoffError("event_column: not a name")
    except HandoffError as e:
        raise HandoffError(f"{where}: chunk refused: {e}") from None
    except (ValueError, KeyError, TypeError, UnsafeKeyError) as e:  # JSON, fields, keys
        raise HandoffError(f"{where}: chunk refused: {type(e).__name__}: {e}") from None
    held.held = hours
    held.event_column = event_column
    return reports, keys


def handoff_uri(lake: Storage, folder: str) -> str:
    """Where a chunk's handoff is, for messages and an ECS task's overrides."""
    return lake.uri_of(folder.rstrip("/")) + "/"


def drop_handoff(lake: Storage, folder: str) -> None:
    """Delete a chunk's handoff (the step, when its run ends)."""
    for info in list(lake.list(folder)):
        lake.discard(info.key)


def _read(lake: Storage, key: str) -> bytes:
    try:
        return lake.read(key)
    except ObjectNotFound:
        name = key.rsplit("/", 1)[-1]
        raise HandoffError(f"{name} missing: the worker handed nothing back") from None


def _report_doc(report: HourReport) -> dict[str, Any]:
    if report.commits:
        raise TypeError("a chunk's report holds commits: a chunk commits nothing")
    doc = {name: getattr(report, name) for name in _REPORT_FIELDS}
    return {k: sorted(v) if isinstance(v, set) else v for k, v in doc.items()}


def _report_of(doc: Any) -> HourReport:
    doc = _dict(doc)
    if set(doc) != set(_REPORT_FIELDS):
        raise HandoffError(f"a report's fields differ: {sorted(set(doc) ^ set(_REPORT_FIELDS))}")
    report = HourReport()
    for name in _REPORT_FIELDS:
        default, value = getattr(report, name), doc[name]
        if isinstance(default, Counter):
            value = Counter({_str(k): _count(n) for k, n in _dict(value).items()})
        elif isinstance(default, set):
            value = set(_strs(value))
        elif isinstance(default, dict):
            value = {_str(k): _strs(v) for k, v in _dict(value).items()}
        elif isinstance(default, list):
            value = _strs(value)
        else:
            value = _count(value)
        setattr(report, name, value)
    return report


def _hour_doc(parts: tuple[Any, ...]) -> dict[str, Any]:
    source_keys, files, earlier_files, replaced_keys, writes = parts
    return {
        "source_keys": source_keys,
        "files": files,
        "earlier_files": earlier_files,
        "replaced_keys": replaced_keys,
        "ledger_writes": [_write_doc(w) for w in writes],
    }


def _write_doc(write: Any) -> dict[str, Any]:
    if not (isinstance(write, partial) and write.func is replace_manifest):
        raise TypeError(f"a ledger write that cannot travel: {write!r}")
    _lake, stream, *args = write.args  # the worker's lake stays behind
    named = dict(zip(_WRITE_ARGS, args, strict=False)) | write.keywords
    info, counts, typed_as = named["info"], named["counts"], named.get("typed_as")
    return {
        "stream": stream,
        "object": _object_doc(info),
        "name": named["name"],
        "counts": {
            **{k: getattr(counts, k) for k in _COUNTS},
            "files": counts.files,
            "shared": [p.as_manifest() for p in counts.shared],
        },
        "earlier": named["earlier"],
        "earlier_files": named["earlier_files"],
        "typed_as": typed_as.as_manifest() if typed_as is not None else None,
        "delete_stale": named.get("delete_stale", True),
    }


class _Chunk:
    """What the step asked a chunk to clean: what its handoff may name."""

    def __init__(self, stream: str, batches: Batches, lake: Storage) -> None:
        self.stream, self.lake = stream, lake
        self.batches = {h.isoformat(): (h, {o.key: o for o in objs}) for h, objs in batches.items()}
        self.names = {output_name(h, o.key) for h, objs in batches.items() for o in objs}
        self.files = tuple(layout.layer_folder(layer, stream) for layer in layout.LEDGER_LAYERS)

    def hour(self, text: str) -> datetime:
        if text not in self.batches:
            raise HandoffError(f"hour {text!r} is not the chunk's")
        return self.batches[text][0]

    def keys(self, data: bytes, doc: Any) -> pa.Table:
        doc = _dict(doc)
        if hashlib.sha256(data).hexdigest() != doc["sha256"]:
            raise HandoffError(f"{KEYS} is not the one {DOC} names (truncated or altered)")
        keys = pq.read_table(io.BytesIO(data))
        if keys.schema != KEPT_SCHEMA or keys.num_rows != doc["rows"]:
            raise HandoffError(f"{KEYS}: not the kept keys' schema or count")
        if set(pc.unique(keys["obj"]).to_pylist()) - self.names:
            raise HandoffError(f"{KEYS}: keys of objects not in the chunk")
        return keys

    def held_hour(self, text: str, doc: Any) -> tuple[Any, ...]:
        objects = self.batches[text][1]
        doc = _dict(doc)
        source_keys, replaced = _strs(doc["source_keys"]), _strs(doc["replaced_keys"])
        if set(source_keys + replaced) - set(objects):
            raise HandoffError(f"hour {text}: source keys that are not the chunk's objects")
        files, earlier_files = self._files(doc["files"]), self._files(doc["earlier_files"])
        writes = [self._write(text, w) for w in doc["ledger_writes"]]
        return source_keys, files, earlier_files, replaced, writes

    def _write(self, text: str, doc: Any) -> partial[tuple[str, dict[str, Any]]]:
        """A ledger write (replace_manifest) checked, bound to the step's lake."""
        hour, objects = self.batches[text]
        doc = _dict(doc)
        key, size, modified, etag = doc["object"]
        info = ObjectInfo(_str(key), _count(size), datetime.fromisoformat(modified), _str(etag))
        if objects.get(info.key) != info or doc["name"] != output_name(hour, info.key):
            raise HandoffError(f"hour {text}: a ledger write for an object not in the chunk")
        if doc["stream"] != self.stream:
            raise HandoffError(f"hour {text}: a ledger write of another stream")
        counts = _dict(doc["counts"])
        files = self._files(counts["files"])
        shared = self._shared(counts["shared"])
        numbers = [_count(counts[k]) for k in _COUNTS]
        earlier = _strs(doc["earlier"])
        if any(not check_key(m).startswith(layout.ledger_folder(self.stream)) for m in earlier):
            raise HandoffError(f"hour {text}: an earlier manifest outside the ledger")
        typed = doc["typed_as"]
        typed_as = None
        if typed is not None:
            types = {_str(c): _str(t) for c, t in _dict(_dict(typed)["column_types"]).items()}
            typed_as = TypedAs(_count(typed["catalog_version"]), types)
        if not isinstance(doc["delete_stale"], bool):
            raise HandoffError("delete_stale: not a boolean")
        return partial(
            replace_manifest,
            self.lake,
            self.stream,
            info,
            doc["name"],
            ObjectCounts(*numbers, files=files, shared=shared),
            earlier,
            self._files(doc["earlier_files"]),
            typed_as,
            delete_stale=doc["delete_stale"],
        )

    def _shared(self, value: Any) -> list[SharedPart]:
        """An object's parts of shared files: row ranges of shared cleaned files of the
        stream (ledger.shared_parts' checks, then the stream's folder)."""
        if not isinstance(value, list):
            raise HandoffError(f"expected a list, found {type(value).__name__}")
        parts = shared_parts({"shared": value})
        self._files([p.file for p in parts])
        return parts

    def _files(self, value: Any) -> list[str]:
        files = _strs(value)
        if any(not check_key(f).startswith(self.files) for f in files):
            raise HandoffError(f"a file outside {' and '.join(self.files)}")
        return files


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise HandoffError(f"expected an object, found {type(value).__name__}")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise HandoffError(f"expected text, found {type(value).__name__}")
    return value


def _strs(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise HandoffError(f"expected a list, found {type(value).__name__}")
    return [_str(v) for v in value]


def _count(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise HandoffError(f"expected a count, found {value!r}")
    return value


def batches_doc(batches: Batches) -> dict[str, list[list[Any]]]:
    """A chunk's objects by hour as JSON for a worker's extras (batches_of reads it)."""
    return {hour.isoformat(): [_object_doc(o) for o in objs] for hour, objs in batches.items()}


def _object_doc(info: ObjectInfo) -> list[Any]:
    """A landed object as JSON: key, size, last modified, ETag."""
    return [info.key, info.size, info.last_modified.isoformat(), info.etag]


def batches_of(doc: dict[str, list[list[Any]]]) -> Batches:
    return {
        datetime.fromisoformat(hour): [
            ObjectInfo(key, size, datetime.fromisoformat(modified), etag)
            for key, size, modified, etag in objs
        ]
        for hour, objs in doc.items()
    }
