"""One pass of an hour's cleaning: some of its objects staged, typed, deduplicated, written.

DuckDB does the SQL (lake.record_staging gets the records in, lake.cleaning types them);
the typed records come back as one Arrow table in (object, position) order, registered
in DuckDB as `typed` for the dedup and count queries and sliced per object for the files,
so they are materialized once. The hour's passes share one DuckDB connection, the keys
seen so far (`seen_keys`) and the keys written (`new_keys`).
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from lake.clean_report import HourReport, ObjectCounts
from lake.cleaning import (
    ROW_SPAN,
    Column,
    json_pointer,
    leaf_columns_of,
    reason_code_sql,
    repeated_key,
    shape_keys_sql,
    sql_string,
    typing_sql,
    unknown_fields_sql,
)
from lake.dedup_state import SEEN_TABLE
from lake.hive_types import Struct, from_duckdb_structure, leaf_columns, leaf_count
from lake.json_fields import as_json_columns, collapse_schema
from lake.parquet_writing import GroupKey, GroupsNotConsecutive, parquet_bytes, write_groups
from lake.record_limits import TOO_DEEP, TOO_MANY_COLUMNS, json_depth, key_problem, value_problem
from lake.record_staging import SOURCE_VIEW, Staged, stage_objects
from lake.storage import ObjectInfo, Storage
from lake.streams import StreamSpec

NEW_KEYS_TABLE = "new_keys"  # (dt, hi, lo, obj): the keys this run wrote
_BATCH_ROWS = 1 << 17  # rows handed to the Parquet writers at a time


class HourRun:
    """What one clean_hour run shares across its passes over the hour's objects."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        spec: StreamSpec,
        landing: Storage,
        lake: Storage,
        hour: datetime,
        scratch: Path,
        report: HourReport,
        schema: Struct,
        ingested_at: datetime | None,
        assigned: dict[tuple[str, ...], str] | None = None,
        json_paths: frozenset[tuple[str, ...]] | None = None,
    ) -> None:
        self.con, self.spec, self.landing, self.lake = con, spec, landing, lake
        self.hour, self.scratch, self.report, self.schema = hour, scratch, report, schema
        self.assigned = assigned or {}  # the catalog's column names (lake.column_names)
        self.json_paths = spec.json.paths if json_paths is None else json_paths
        self.ingested_at = ingested_at or datetime.now(UTC)
        self.per_object: dict[str, ObjectCounts] = {}
        con.execute(
            f"CREATE TEMP TABLE {NEW_KEYS_TABLE} (dt DATE, hi UBIGINT, lo UBIGINT, obj VARCHAR)"
        )

    def clean_pass(self, chunk: list[ObjectInfo], names: list[str], n: int) -> None:
        """Stage, type, deduplicate and write some of the hour's objects (`names` are their
        output names)."""
        work = self.scratch / f"pass-{n}"
        work.mkdir()
        staged = stage_objects(self.con, self.spec, self.landing, chunk, work)
        self.report.objects_split_in_python += len(staged.python_split)
        columns, typed = self._type_records()
        self.con.register("objects", _objects_table(chunk, names))
        dropped = _drop_duplicates(self.con)
        self.per_object.update({name: ObjectCounts() for name in names})
        self._write_cleaned(chunk, names, columns, typed, dropped)
        self._write_quarantine(staged, names, typed)
        self._count(staged, names)
        self.con.execute(
            f"INSERT INTO {NEW_KEYS_TABLE} "
            "SELECT dt, hi, lo, o._name AS obj FROM firsts JOIN objects o USING (_object)"
        )
        self.con.execute(f"INSERT INTO {SEEN_TABLE} SELECT hi, lo FROM firsts")
        dates = self.con.execute("SELECT DISTINCT dt FROM firsts").fetchall()
        self.report.event_dates |= {f"{d:%Y-%m-%d}" for (d,) in dates}
        self.con.unregister("typed")
        shutil.rmtree(work)  # fetched S3 objects and links made for this pass

    def _type_records(self) -> tuple[list[Column], pa.Table]:
        """Every staged record with its typed columns or a reason, its event date `_dt`
        (registered as `typed`). Top-level fields the catalog lacks are added, typed from
        the records (and reported), not dropped, while the stream's limits allow them
        (max_columns, max_nesting_depth, max_key_bytes); records with a field that does
        not fit are quarantined."""
        refused: dict[str, str] = {}  # unknown field -> why it was not added
        while True:  # each round adds or refuses every unknown field: two rounds at most
            columns = leaf_columns_of(self.schema, self.spec, self.assigned, self.json_paths)
            sql = typing_sql(SOURCE_VIEW, columns, self.spec, self.hour)
            typed = self.con.sql(
                f"SELECT *, {self._event_date(columns)} AS _dt FROM ({sql})"
            ).to_arrow_table()
            self.con.register("typed", typed)
            shapes = self.con.execute(shape_keys_sql(SOURCE_VIEW, "typed")).fetchall()
            typed = self._quarantine_shapes(typed, shapes, refused)
            unknown: dict[str, None] = {}  # first-seen order
            novel = []
            for shape, keys in shapes:
                if self._keys_reason(keys) is not None:
                    continue  # quarantined whole: its keys never reach the columns
                new = [k for k in keys if k not in self.schema.fields and k not in refused]
                unknown.update(dict.fromkeys(new))
                if new:
                    novel.append(shape)
            if not unknown:
                return columns, typed
            found = self._unknown_structure(list(unknown), novel, refused)
            added = self._add_unknown_fields(list(unknown), found, refused)
            report = self.report.columns_not_in_catalog
            report["added"] = report.get("added", []) + added
            if refused:
                report["over_limits"] = list(refused)

    def _unknown_structure(
        self, unknown: list[str], novel: list[int], refused: dict[str, str]
    ) -> Struct:
        """The types of the unknown fields, from the records; a field nested past
        max_nesting_depth or with a key past max_key_bytes goes to `refused` instead
        (checked on the text first, so that no parse recurses too deep)."""
        limits = self.spec.limits
        text = self.con.execute(unknown_fields_sql(SOURCE_VIEW, novel)).fetchall()[0][0]
        if json_depth(text) <= limits.max_nesting_depth:
            structure = json.loads(text)
        else:  # one field at a time, to find the deep ones
            structure = {}
            for key in unknown:
                sql = unknown_fields_sql(SOURCE_VIEW, novel, json_pointer((key,)))
                text = self.con.execute(sql).fetchall()[0][0]
                if json_depth(text) + 1 > limits.max_nesting_depth:
                    refused[key] = (
                        f"{TOO_DEEP}: field {key[:200]!r} nests past {limits.max_nesting_depth} levels"
                    )
                else:
                    structure[key] = json.loads(text)
        for key in unknown:
            if key in structure and (problem := value_problem(structure[key], limits, 2)):
                refused[key] = f"{problem} (in field {key[:200]!r})"
        found = from_duckdb_structure({k: v for k, v in structure.items() if k not in refused})
        assert isinstance(found, Struct)
        return collapse_schema(found, self.json_paths)  # a JSON field is one column

    def _add_unknown_fields(
        self, unknown: list[str], found: Struct, refused: dict[str, str]
    ) -> list[str]:
        """Add the fields in first-seen order while the table stays within max_columns
        leaves; the others go to `refused`. Returns those added."""
        limit = self.spec.limits.max_columns
        room = limit - len(leaf_columns(self.schema))
        fields = dict(self.schema.fields)
        added = []
        for key in unknown:
            if key in refused:
                continue
            t = found.fields.get(key, "string")
            if leaf_count(t) <= room:
                fields[key] = t
                room -= leaf_count(t)
                added.append(key)
            else:
                refused[key] = (
                    f"{TOO_MANY_COLUMNS}: field {key[:200]!r} would take the stream past "
                    f"{limit} columns"
                )
        self.schema = Struct(fields)
        return added

    def _event_date(self, columns: list[Column]) -> str:
        """SQL for a record's event date (the arrival date if the catalog has no event time)."""
        for c in columns:
            if c.path == (self.spec.event_time_field,):
                return f'CAST("{c.name}" AS DATE)'
        return f"DATE '{self.hour:%Y-%m-%d}'"

    def _quarantine_shapes(
        self, typed: pa.Table, shapes: list[tuple[int, list[str]]], refused: dict[str, str]
    ) -> pa.Table:
        """Reasons that come from a record's key list, whatever else is wrong with it: a
        key twice is ambiguous (which value counts?); more top-level keys than the stream
        may have columns, or a field that did not fit them, is too many columns."""
        reasons = [(shape, self._shape_reason(keys, refused)) for shape, keys in shapes]
        reasons = [(shape, reason) for shape, reason in reasons if reason is not None]
        if not reasons:
            return typed
        column = typed["_reason"]
        for shape, reason in reasons:
            of_shape = pc.fill_null(pc.equal(typed["_shape"], pa.scalar(shape, pa.uint64())), False)
            column = pc.if_else(of_shape, reason, column)
        typed = typed.set_column(typed.schema.get_field_index("_reason"), "_reason", column)
        self.con.register("typed", typed)
        return typed

    def _shape_reason(self, keys: list[str], refused: dict[str, str]) -> str | None:
        if (reason := self._keys_reason(keys)) is not None:
            return reason
        return next((refused[k] for k in keys if k in refused), None)

    def _keys_reason(self, keys: list[str]) -> str | None:
        """Why a record's top-level key list alone makes it unusable, or None."""
        limit = self.spec.limits.max_columns
        key = repeated_key(keys)
        if key is not None:
            return f"duplicate key in record: {key[:200]}"
        if len(keys) > limit:
            return (
                f"{TOO_MANY_COLUMNS}: {len(keys)} top-level keys, the stream allows {limit} columns"
            )
        return next(filter(None, (key_problem(k, self.spec.limits) for k in keys)), None)

    def _write_cleaned(
        self,
        chunk: list[ObjectInfo],
        names: list[str],
        columns: list[Column],
        typed: pa.Table,
        dropped: pa.Array | None,
    ) -> None:
        """One zstd file per object and event date, records in their order. `typed` is in
        object and position order, so each object is a run of rows (no sort); should an
        object ever come in pieces, the rows are sorted and all files rewritten."""
        keep = pc.is_null(typed["_reason"])
        if dropped is not None:
            rid = pc.add(pc.multiply(typed["_object"], ROW_SPAN), typed["_position"])
            keep = pc.and_(keep, pc.invert(pc.is_in(rid, value_set=dropped)))
        rows = typed.select([c.name for c in columns] + ["_position", "_dt", "_object"])
        if pc.sum(pc.invert(keep)).as_py():
            rows = rows.filter(keep)
        json_names = [c.name for c in columns if c.json]
        unique = {"_position"} | {
            c.name
            for c in columns
            if c.path in ((self.spec.dedup_key,), (self.spec.event_time_field,))
        }

        def write(group: GroupKey, table: pa.Table) -> list[str]:
            index = group[0]
            assert isinstance(index, int)
            days = pc.unique(table["_dt"]).to_pylist()
            keys = []
            for day in days:
                part = table if len(days) == 1 else table.filter(pc.equal(table["_dt"], day))
                keys.append(f"cleaned/{self.spec.name}/dt={day:%Y-%m-%d}/{names[index]}")
                part = self._with_lineage(part.drop_columns(["_dt"]), chunk[index].key)
                part = as_json_columns(part, json_names)
                self.lake.write(keys[-1], parquet_bytes(part, no_dictionary=unique))
            return keys

        try:
            files = write_groups(rows.to_reader(_BATCH_ROWS), ["_object"], write)
        except GroupsNotConsecutive:
            rows = rows.sort_by([("_object", "ascending"), ("_position", "ascending")])
            files = write_groups(rows.to_reader(_BATCH_ROWS), ["_object"], write)
        for (index,), keys in files.items():
            self.per_object[names[index]].files += keys  # type: ignore[index]

    def _with_lineage(self, rows: pa.Table, source_key: str) -> pa.Table:
        """The record columns, then _source_key, _position, _arrival_hour, _ingested_at
        (constants made per file, not carried per row)."""
        n = rows.num_rows
        position = rows.column("_position")
        rows = rows.drop_columns(["_position"])
        utc = pa.timestamp("us", tz="UTC")
        lineage = {
            "_source_key": pa.repeat(pa.scalar(source_key), n),
            "_position": position,
            "_arrival_hour": pa.repeat(pa.scalar(self.hour, utc), n),
            "_ingested_at": pa.repeat(pa.scalar(self.ingested_at, utc), n),
        }
        for name, values in lineage.items():
            rows = rows.append_column(name, values)
        return rows

    def _write_quarantine(self, staged: Staged, names: list[str], typed: pa.Table) -> None:
        """Records with a reason, and what staging refused, one file per object."""
        if typed["_reason"].null_count == typed.num_rows and not staged.rejected:
            return
        self.con.register("rejected", _rejected_table(staged))
        arrival = sql_string(self.hour.isoformat())
        ingested = sql_string(self.ingested_at.isoformat())
        self.con.execute(
            f"""CREATE OR REPLACE TEMP TABLE quarantined AS
                SELECT q._object, o._source_key AS source_key, q._position AS position, q.reason,
                       {reason_code_sql("q.reason")} AS reason_code, q.raw AS raw_text,
                       {arrival}::TIMESTAMPTZ AS arrival_hour,
                       {ingested}::TIMESTAMPTZ AS quarantined_at
                FROM (SELECT t._object, t._position, t._reason AS reason, s.raw
                      FROM typed t JOIN {SOURCE_VIEW} s USING (_object, _position)
                      WHERE t._reason IS NOT NULL
                      UNION ALL SELECT _object, _position, reason, raw FROM rejected) q
                JOIN objects o USING (_object)"""
        )
        self.report.quarantined_by_reason.update(
            dict(
                self.con.execute(
                    "SELECT reason_code, count(*) FROM quarantined GROUP BY 1"
                ).fetchall()
            )
        )
        indexes = self.con.execute("SELECT DISTINCT _object FROM quarantined ORDER BY 1").fetchall()
        for (index,) in indexes:
            rows = self.con.sql(
                "SELECT source_key, position, reason, reason_code, raw_text, arrival_hour, "
                "quarantined_at "
                "FROM quarantined WHERE _object = ? ORDER BY position",
                params=[index],
            ).to_arrow_table()
            key = f"quarantine/{self.spec.name}/dt={self.hour:%Y-%m-%d}/{names[index]}"
            self.lake.write(key, parquet_bytes(rows))
            self.per_object[names[index]].files.append(key)

    def _count(self, staged: Staged, names: list[str]) -> None:
        typed = self.con.execute(
            """SELECT _object, count(*) FILTER (WHERE _reason IS NULL),
                      count(*) FILTER (WHERE _reason IS NOT NULL)
               FROM typed GROUP BY _object"""
        ).fetchall()
        kept = dict(
            self.con.execute("SELECT _object, count(*) FROM firsts GROUP BY _object").fetchall()
        )
        for index, good, bad in typed:
            c = self.per_object[names[index]]
            c.records_in += good + bad
            c.records_quarantined += bad
            c.records_cleaned = kept.get(index, 0)
            c.duplicates_dropped = good - c.records_cleaned
        for r in staged.rejected:
            c = self.per_object[names[r.object_index]]
            c.records_in += 1
            c.records_quarantined += 1


def _rejected_table(staged: Staged) -> pa.Table:
    return pa.table(
        {
            "_object": pa.array([r.object_index for r in staged.rejected], pa.int64()),
            "_position": pa.array([r.position for r in staged.rejected], pa.int64()),
            "reason": pa.array([r.reason for r in staged.rejected], pa.string()),
            "raw": pa.array([r.raw_text for r in staged.rejected], pa.string()),
        }
    )


def _objects_table(chunk: list[ObjectInfo], names: list[str]) -> pa.Table:
    return pa.table(
        {
            "_object": pa.array(range(len(chunk)), pa.int64()),
            "_source_key": pa.array([o.key for o in chunk], pa.string()),
            "_name": pa.array(names, pa.string()),
        }
    )


def _drop_duplicates(con: duckdb.DuckDBPyConnection) -> pa.Array | None:
    """The row ids (object * ROW_SPAN + position) of typed records whose dedup key came
    earlier in (object, position) order in this run or is among the keys already written;
    None when there are none. `firsts` (narrow: row id, object, event date, 128-bit key
    halves) lists the records kept."""
    rid = f"_object * {ROW_SPAN} + _position"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE firsts AS
        SELECT hi, lo, arg_min(_object, rid) AS _object, min(rid) AS rid,
               arg_min(_dt, rid) AS dt, count(*) AS copies
        FROM (SELECT _object, {rid} AS rid, _dt, _key_hi AS hi, _key_lo AS lo
              FROM typed WHERE _reason IS NULL)
        GROUP BY hi, lo
        """
    )
    copies, seen_keys = con.execute(
        f"SELECT (SELECT max(copies) FROM firsts), (SELECT count(*) FROM {SEEN_TABLE})"
    ).fetchall()[0]
    if (copies or 0) <= 1 and not seen_keys:
        return None  # nothing to drop (the usual first run of an hour)
    seen = f"EXISTS (SELECT 1 FROM {SEEN_TABLE} s WHERE s.hi = firsts.hi AND s.lo = firsts.lo)"
    dropped = con.sql(
        f"""
        SELECT k.rid
        FROM (SELECT {rid} AS rid, _key_hi AS hi, _key_lo AS lo FROM typed WHERE _reason IS NULL) k
        JOIN (SELECT hi, lo, rid FROM firsts WHERE copies > 1) f
            ON f.hi = k.hi AND f.lo = k.lo AND k.rid <> f.rid
        UNION ALL SELECT rid FROM firsts WHERE {seen}
        """
    ).to_arrow_table()["rid"]
    con.execute(f"DELETE FROM firsts WHERE {seen}")
    return dropped.combine_chunks() if len(dropped) else None
