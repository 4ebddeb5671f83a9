"""Getting an hour's landed objects into DuckDB as (object, position, raw record text).

The fast path is DuckDB's own reader (`read_json_objects`, gzip included), which splits
concatenated and newline-delimited JSON at C speed. It refuses a whole file when one
record is malformed, so such files (and CloudTrail-style wrappers) go through the Python
splitter in lake.framings instead, which keeps every good record and returns each bad one
with its raw text and reason. Objects that cannot be read at all are returned whole.

Both read the plain bytes lake.object_fetch decompressed into memory (within the stream's
max_object_expanded_bytes), or a plain local file in place: DuckDB reads the bytes through
lake.cleaning.landed_files, so nothing is copied to local disk to be read. The Python
splitter streams: it writes its records to a scratch Parquet file as it goes, so an object
of any size costs a few times the stream's max_record_bytes in memory, and a record over
that limit is set aside (record_too_large) with a prefix of its text and its length.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from lake.cleaning.landed_files import LandedFiles, registered
from lake.cleaning.tables import PYTHON_RECORDS, RAW, STAGED
from lake.framings.base import PREFIX_CHARS, TOO_LARGE, UnreadableObject
from lake.framings.registry import framing_of
from lake.object_fetch import PREFIX_BYTES, LandedObject, fetch_object
from lake.sql_text import sql_string
from lake.storage import ObjectInfo, Storage
from lake.streams import StreamSpec

# DuckDB's reader buffers twice this per thread (16 MB at least); a record that does not
# fit makes it refuse the files, and the refused file then goes the Python way.
MAX_RECORD_BYTES = 64 << 20
_PYTHON_BATCH_CHARS = 16 << 20  # record text per batch written by the Python splitter
_PYTHON_SCHEMA = pa.schema(
    [("_object", pa.int64()), ("_position", pa.int64()), ("raw", pa.string())]
)


@dataclass
class Rejected:
    """A record (or a whole object, position -1) refused before typing."""

    object_index: int
    position: int
    reason: str
    raw_text: str


@dataclass
class Staged:
    """What staging made: the view `relation` (_object, _position, raw) over the records
    that reached DuckDB, and the records it refused."""

    objects: list[ObjectInfo]  # index in this list = `_object` in the view
    rejected: list[Rejected] = field(default_factory=list)
    python_split: list[str] = field(default_factory=list)  # keys DuckDB's reader refused
    relation: str = STAGED


def stage_objects(
    con: duckdb.DuckDBPyConnection,
    spec: StreamSpec,
    landing: Storage,
    objects: list[ObjectInfo],
    scratch: Path,
) -> Staged:
    """Create the view STAGED (_object, _position, raw) over every record of
    the given objects that reached DuckDB (the rest is in `Staged.rejected`). Objects
    not fetched yet (not LandedObject) are fetched first."""
    landed = [
        o
        if isinstance(o, LandedObject)
        else fetch_object(landing, o, spec.limits.max_object_expanded_bytes)
        for o in objects
    ]
    refused = [Rejected(i, -1, o.refusal, o.raw_prefix) for i, o in enumerate(landed) if o.refusal]
    files = {i: o for i, o in enumerate(landed) if o.readable}
    split: dict[int, _Split] = {}
    with registered(con) as in_memory:
        fast = _indexed_names(files, in_memory, scratch) if _reader(spec) is not None else {}
        staged = _load(con, spec, objects, files, fast, scratch, split)
        if staged is None:  # some file has a malformed record: find it, the others stay fast
            fast = {i: name for i, name in fast.items() if _duckdb_reads(con, spec, name)}
            staged = _load(con, spec, objects, files, fast, scratch, split)
    assert staged is not None
    staged.rejected = refused + staged.rejected
    return staged


@dataclass
class _Split:
    """What the Python splitter made of one object: its records' file, its refusals."""

    parquet: Path | None
    rejected: list[Rejected]


def _load(
    con: duckdb.DuckDBPyConnection,
    spec: StreamSpec,
    objects: list[ObjectInfo],
    files: dict[int, LandedObject],
    fast: dict[int, str],
    scratch: Path,
    split: dict[int, _Split],
) -> Staged | None:
    staged = Staged(objects)
    for i in files:
        if i not in fast:
            staged.python_split.append(objects[i].key)
            if i not in split:
                split[i] = _split_in_python(spec, i, files[i], scratch / f"python-{i}.parquet")
            staged.rejected += split[i].rejected
    parquet = [s.parquet for i, s in split.items() if i not in fast and s.parquet is not None]
    _register_python_records(con, parquet, staged.rejected)
    try:
        parts = _read_fast_files(con, spec, fast)
    except duckdb.Error:  # malformed JSON, binary junk, a record over the reader's limit...
        return None
    parts = [
        _set_aside_large(con, part, spec.limits.max_record_bytes, staged.rejected) for part in parts
    ]
    parts.append(f"SELECT _object, _position, raw FROM {PYTHON_RECORDS}")
    con.execute(f"CREATE OR REPLACE TEMP VIEW {STAGED} AS " + " UNION ALL ".join(parts))
    return staged


def _read_fast_files(
    con: duckdb.DuckDBPyConnection, spec: StreamSpec, fast: dict[int, str]
) -> list[str]:
    """Read the files DuckDB accepts (plain: lake.object_fetch decompressed them) with one
    multi-file scan (parallel across files) into RAW (_object, raw), whose rowids
    keep file and record order; return the SELECT giving (_object, _position, raw), where
    position = rowid - the object's first rowid. Each file is read under a name ending in
    its object index, so the index comes from the file name and no join reorders the records."""
    con.execute(f"DROP TABLE IF EXISTS {RAW}")  # the last pass's, before the new one
    if not fast:
        return []
    con.execute(
        f"CREATE TEMP TABLE {RAW} AS "
        f"SELECT parse_filename(filename, true)::BIGINT AS _object, raw FROM ({_reader(spec)})",
        [list(fast.values())],
    )
    firsts = dict(con.execute(f"SELECT _object, min(rowid) FROM {RAW} GROUP BY _object").fetchall())
    first_rowids = "[" + ", ".join(str(firsts.get(i, 0)) for i in range(max(fast) + 1)) + "]"
    return [
        f"SELECT _object, (rowid - {first_rowids}[_object + 1])::BIGINT AS _position, raw "
        f"FROM {RAW}"
    ]


def _set_aside_large(
    con: duckdb.DuckDBPyConnection, part: str, limit: int, rejected: list[Rejected]
) -> str:
    """DuckDB's reader takes records up to 16 MB whatever its limit says: those over the
    stream's limit join `rejected` (a prefix of their text, their length) and `part`
    comes back without them."""
    large = con.execute(
        f"SELECT _object, _position, left(raw, {PREFIX_CHARS}), strlen(raw) FROM ({part}) "
        f"WHERE strlen(raw) > {int(limit)}"
    ).fetchall()
    rejected += [
        Rejected(o, p, f"{TOO_LARGE}: record of {n} bytes exceeds max_record_bytes={limit}", t)
        for o, p, t, n in large
    ]
    return f"SELECT * FROM ({part}) WHERE strlen(raw) <= {int(limit)}" if large else part


def _indexed_names(
    files: dict[int, LandedObject], in_memory: LandedFiles, scratch: Path
) -> dict[int, str]:
    """A name for each object's bytes ending in its object index (see _read_fast_files):
    in `in_memory` for bytes in memory, a link for a local file read in place."""
    folder: Path | None = None
    names = {}
    for i, landed in files.items():
        if landed.path is None:
            names[i] = in_memory.add(i, landed.data or b"")
            continue
        folder = folder or Path(tempfile.mkdtemp(dir=scratch, prefix="links-"))
        (folder / str(i)).symlink_to(landed.path.resolve())
        names[i] = str(folder / str(i))
    return names


def _reader(spec: StreamSpec) -> str | None:
    # A record over the stream's limit makes the reader refuse the file: it then goes the
    # Python way, where that record is set aside with its reason.
    limit = min(spec.limits.max_record_bytes, MAX_RECORD_BYTES)
    return framing_of(spec).duckdb_reader(limit)


def _duckdb_reads(con: duckdb.DuckDBPyConnection, spec: StreamSpec, name: str) -> bool:
    """Whether DuckDB's reader accepts the whole file (it refuses any malformed record)."""
    try:
        con.execute(f"SELECT count(*) FROM ({_reader(spec)})", [[name]]).fetchall()
    except duckdb.Error:
        return False
    return True


def _register_python_records(
    con: duckdb.DuckDBPyConnection, parquet: list[Path], rejected: list[Rejected]
) -> None:
    """PYTHON_RECORDS over the Python splitter's files. Python's parser is laxer than
    DuckDB's (lone surrogates): DuckDB has the last word, its refusals join `rejected`."""
    if not parquet:
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {PYTHON_RECORDS} AS SELECT NULL::BIGINT AS _object, "
            "NULL::BIGINT AS _position, NULL::VARCHAR AS raw WHERE false"
        )
        return
    files = "[" + ", ".join(sql_string(str(p)) for p in parquet) + "]"
    source = f"read_parquet({files})"
    bad = con.execute(
        f"SELECT _object, _position, raw FROM {source} WHERE NOT json_valid(raw)"
    ).fetchall()
    rejected += [
        Rejected(o, p, "invalid JSON (rejected by the JSON parser)", raw) for o, p, raw in bad
    ]
    with_bad = " WHERE json_valid(raw)" if bad else ""
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {PYTHON_RECORDS} AS "
        f"SELECT _object, _position, raw FROM {source}{with_bad}"
    )


def _split_in_python(spec: StreamSpec, index: int, landed: LandedObject, out: Path) -> _Split:
    """Split one object's plain bytes with its framing's streaming splitter, writing its
    good records to `out` in batches; an object that is not text is refused whole."""
    rejected: list[Rejected] = []
    positions: list[int] = []
    texts: list[str] = []
    size = 0
    written = 0
    try:
        with landed.open() as fh, pq.ParquetWriter(out, _PYTHON_SCHEMA, compression="none") as w:
            for record in framing_of(spec).split_file(fh, spec.limits.max_record_bytes):
                if record.error is not None:
                    rejected.append(Rejected(index, record.position, record.error, record.text))
                    continue
                positions.append(record.position)
                texts.append(record.text)
                size += len(record.text)
                if size >= _PYTHON_BATCH_CHARS:
                    written += _write_batch(w, index, positions, texts)
                    size = 0
            written += _write_batch(w, index, positions, texts)
    except UnreadableObject as exc:
        out.unlink(missing_ok=True)
        with landed.open() as fh:
            raw = fh.read(PREFIX_BYTES).decode("utf-8", "replace")
        return _Split(None, [Rejected(index, -1, f"unreadable_object: {exc}", raw)])
    return _Split(out if written else None, rejected)


def _write_batch(
    writer: pq.ParquetWriter, index: int, positions: list[int], texts: list[str]
) -> int:
    if not positions:
        return 0
    n = len(positions)
    writer.write_table(
        pa.table(
            {
                "_object": pa.array([index] * n, pa.int64()),
                "_position": pa.array(positions, pa.int64()),
                "raw": pa.array(texts, pa.string()),
            },
            schema=_PYTHON_SCHEMA,
        )
    )
    positions.clear()
    texts.clear()
    return n
