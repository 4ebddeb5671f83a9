"""Getting an hour's landed objects into DuckDB as (object, position, raw record text).

The fast path is DuckDB's own reader (`read_json_objects`, gzip included), which splits
concatenated and newline-delimited JSON at C speed. It refuses a whole file when one
record is malformed, so such files (and CloudTrail-style wrappers) go through the Python
splitter in lake.formats instead, which keeps every good record and returns each bad one
with its raw text and reason. Objects that cannot be read at all are returned whole.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from lake.formats import GZIP_MAGIC, UnreadableObject, decode_bytes, iter_records
from lake.storage import ObjectInfo, Storage, local_path
from lake.streams import StreamSpec

SOURCE_VIEW = "staged_records"
# DuckDB's reader buffers twice this per thread (16 MB at least); a record that does not
# fit makes it refuse the files, and the refused file then goes the Python way.
MAX_RECORD_BYTES = 64 << 20
_DUCKDB_FORMATS = {"concatenated_json": "unstructured", "ndjson": "newline_delimited"}


@dataclass
class Rejected:
    """A record (or a whole object, position -1) refused before typing."""

    object_index: int
    position: int
    reason: str
    raw_text: str


@dataclass
class Staged:
    objects: list[ObjectInfo]  # index in this list = `_object` in the view
    rejected: list[Rejected] = field(default_factory=list)
    python_split: list[str] = field(default_factory=list)  # keys DuckDB's reader refused


def stage_objects(
    con: duckdb.DuckDBPyConnection,
    spec: StreamSpec,
    landing: Storage,
    objects: list[ObjectInfo],
    scratch: Path,
) -> Staged:
    """Create the view `staged_records(_object, _position, raw)` over every record of
    the given objects that reached DuckDB (the rest is in `Staged.rejected`)."""
    files = {i: local_path(landing, info.key, scratch) for i, info in enumerate(objects)}
    fast = _indexed_links(files, scratch) if spec.format in _DUCKDB_FORMATS else {}
    staged = _load(con, spec, objects, files, fast)
    if staged is None:  # some file has a malformed record: find it, the others stay fast
        fast = {i: path for i, path in fast.items() if _duckdb_reads(con, spec, path)}
        staged = _load(con, spec, objects, files, fast)
    assert staged is not None
    return staged


def _load(
    con: duckdb.DuckDBPyConnection,
    spec: StreamSpec,
    objects: list[ObjectInfo],
    files: dict[int, Path],
    fast: dict[int, Path],
) -> Staged | None:
    staged = Staged(objects)
    python_rows: list[tuple[int, int, str]] = []
    for i, info in enumerate(objects):
        if i not in fast:
            staged.python_split.append(info.key)
            python_rows += _split_in_python(spec, i, files[i], staged.rejected)
    con.register("python_records", _drop_invalid_for_duckdb(con, python_rows, staged.rejected))
    try:
        parts = _read_fast_files(con, spec, fast)
    except duckdb.Error:  # malformed JSON, a truncated gzip, binary junk, a huge record...
        return None
    parts.append("SELECT _object, _position, raw FROM python_records")
    con.execute(f"CREATE OR REPLACE TEMP VIEW {SOURCE_VIEW} AS " + " UNION ALL ".join(parts))
    return staged


_COMPRESSIONS = ("gzip", "none")


def _read_fast_files(
    con: duckdb.DuckDBPyConnection, spec: StreamSpec, fast: dict[int, Path]
) -> list[str]:
    """Read the files DuckDB accepts with one multi-file scan per compression (parallel
    across files) into `raw_<compression>(_object, raw)`, whose rowids keep file and
    record order; return SELECTs giving (_object, _position, raw), where position =
    rowid - the object's first rowid. Each file is read through a link named by its object
    index, so the index comes from the file name and no join reorders the records."""
    groups: dict[str, list[str]] = {c: [] for c in _COMPRESSIONS}
    for path in fast.values():
        groups[_compression_of(path)].append(str(path))
    parts = []
    for compression, links in groups.items():
        table = f"raw_{compression}"
        if not links:
            con.execute(f"DROP TABLE IF EXISTS {table}")
            continue
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {table} AS "
            f"SELECT parse_filename(filename, true)::BIGINT AS _object, json::VARCHAR AS raw "
            f"FROM read_json_objects(?, {_reader_options(spec, compression)}, filename=true)",
            [links],
        )
        firsts = dict(
            con.execute(f"SELECT _object, min(rowid) FROM {table} GROUP BY _object").fetchall()
        )
        first_rowids = "[" + ", ".join(str(firsts.get(i, 0)) for i in range(max(fast) + 1)) + "]"
        parts.append(
            f"SELECT _object, (rowid - {first_rowids}[_object + 1])::BIGINT AS _position, raw "
            f"FROM {table}"
        )
    return parts


def _indexed_links(files: dict[int, Path], scratch: Path) -> dict[int, Path]:
    """A link to each file named by its object index (see _read_fast_files)."""
    folder = Path(tempfile.mkdtemp(dir=scratch, prefix="links-"))
    links = {}
    for i, path in files.items():
        links[i] = folder / str(i)
        links[i].symlink_to(path.resolve())
    return links


def _compression_of(path: Path) -> str:
    with open(path, "rb") as fh:
        return "gzip" if fh.read(2) == GZIP_MAGIC else "none"


def _reader_options(spec: StreamSpec, compression: str) -> str:
    return (
        f"format='{_DUCKDB_FORMATS[spec.format]}', compression='{compression}', "
        f"maximum_object_size={MAX_RECORD_BYTES}"
    )


def _duckdb_reads(con: duckdb.DuckDBPyConnection, spec: StreamSpec, path: Path) -> bool:
    """Whether DuckDB's reader accepts the whole file (it refuses any malformed record)."""
    options = _reader_options(spec, _compression_of(path))
    try:
        con.execute(f"SELECT count(*) FROM read_json_objects(?, {options})", [str(path)]).fetchall()
    except duckdb.Error:
        return False
    return True


def _drop_invalid_for_duckdb(
    con: duckdb.DuckDBPyConnection, rows: list[tuple[int, int, str]], rejected: list[Rejected]
) -> pa.Table:
    """Python's parser is laxer than DuckDB's (lone surrogates): DuckDB has the last word."""
    table = pa.table(
        {
            "_object": pa.array([r[0] for r in rows], pa.int64()),
            "_position": pa.array([r[1] for r in rows], pa.int64()),
            "raw": pa.array([r[2] for r in rows], pa.string()),
        }
    )
    con.register("python_candidates", table)
    bad = con.execute(
        "SELECT _object, _position, raw FROM python_candidates WHERE NOT json_valid(raw)"
    ).fetchall()
    rejected += [
        Rejected(o, p, "invalid JSON (rejected by the JSON parser)", raw) for o, p, raw in bad
    ]
    if not bad:
        return table
    return con.sql("SELECT * FROM python_candidates WHERE json_valid(raw)").to_arrow_table()


def _split_in_python(
    spec: StreamSpec, index: int, path: Path, rejected: list[Rejected]
) -> list[tuple[int, int, str]]:
    data = path.read_bytes()
    try:
        records = list(iter_records(decode_bytes(data), spec))
    except UnreadableObject as exc:
        raw = data[:1_000_000].decode("utf-8", "replace")
        rejected.append(Rejected(index, -1, f"unreadable object: {exc}", raw))
        return []
    rows = []
    for record in records:
        if record.error is not None:
            rejected.append(Rejected(index, record.position, record.error, record.text))
        else:
            rows.append((index, record.position, record.text))
    return rows
