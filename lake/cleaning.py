"""Records -> typed, flat, masked, deduplicated rows; everything else -> quarantine.

Columns come from the stream's catalog table: every leaf of every struct becomes a
`parent_child` column; arrays are kept whole as JSON text (their element shape varies and
Redshift/Athena read JSON text without a nested type); event time becomes a UTC timestamp.
For every object: records_in = cleaned + quarantined + duplicates_dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from lake.crawler import stored_schema
from lake.formats import RawRecord, UnreadableObject, decode_bytes, iter_records
from lake.hive_types import Struct, leaf_columns
from lake.pii import hash_key, mask
from lake.streams import StreamSpec

LINEAGE_COLUMNS = ("_source_key", "_position", "_arrival_hour", "_ingested_at")


class CastError(ValueError):
    pass


@dataclass(frozen=True)
class Column:
    name: str  # flat, safe column name
    path: tuple[str, ...]  # the record's original keys from its root
    type: str  # Hive leaf type (arrays included, stored as JSON text)
    mask: str | None = None


@dataclass
class Quarantined:
    source_key: str
    position: int  # -1 for a whole unreadable object
    reason: str
    raw_text: str


@dataclass
class ObjectCleaned:
    key: str
    bytes_in: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    duplicates_dropped: int = 0
    records_in: int = 0

    @property
    def balanced(self) -> bool:
        return self.records_in == len(self.rows) + len(self.quarantined) + self.duplicates_dropped


def columns_from_table(table: dict[str, Any] | None, spec: StreamSpec) -> list[Column]:
    return leaf_columns_of(stored_schema(table), spec)


def leaf_columns_of(schema: Struct, spec: StreamSpec) -> list[Column]:
    """Flatten the schema into leaf columns with PII masks; flat names made unique."""
    pii = {tuple(path.split(".")): how for path, how in spec.pii.items()}
    columns: list[Column] = []
    used: set[str] = set(LINEAGE_COLUMNS)
    for flat, path, leaf in leaf_columns(schema):
        how = next((m for p, m in pii.items() if path[: len(p)] == p), None)
        if how == "hash":
            leaf = "string"
        name = flat
        n = 2
        while name in used:
            name, n = f"{flat}_{n}", n + 1
        used.add(name)
        columns.append(Column(name, path, leaf, how))
    return columns


def read_object(key: str, data: bytes, spec: StreamSpec) -> list[RawRecord] | Quarantined:
    """The object's records, or one quarantine entry when the object cannot be read at all."""
    try:
        return list(iter_records(decode_bytes(data), spec))
    except UnreadableObject as exc:
        raw = data[:1_000_000].decode("utf-8", "replace")
        return Quarantined(key, -1, f"unreadable object: {exc}", raw)


def clean_records(
    spec: StreamSpec,
    columns: list[Column],
    key: str,
    records: list[RawRecord] | Quarantined,
    bytes_in: int,
    seen_keys: set[str],
    arrival_hour: datetime,
    ingested_at: datetime,
) -> ObjectCleaned:
    """Clean one object's records. `seen_keys` carries dedup state across a run's objects."""
    out = ObjectCleaned(key=key, bytes_in=bytes_in)
    if isinstance(records, Quarantined):
        out.records_in = 1
        out.quarantined.append(records)
        return out
    secret = hash_key()
    time_path = (spec.event_time_field,)
    for record in records:
        out.records_in += 1
        reason = _record_problem(record, spec)
        if reason is None:
            try:
                row = _typed_row(record.value, columns, secret, time_path, spec.event_time_format)
            except CastError as exc:
                reason = str(exc)
        if reason is not None:
            out.quarantined.append(Quarantined(key, record.position, reason, record.text))
            continue
        dedup_value = str(record.value[spec.dedup_key])
        if dedup_value in seen_keys:
            out.duplicates_dropped += 1
            continue
        seen_keys.add(dedup_value)
        row.update(
            _source_key=key,
            _position=record.position,
            _arrival_hour=arrival_hour,
            _ingested_at=ingested_at,
        )
        out.rows.append(row)
    return out


def _record_problem(record: Any, spec: StreamSpec) -> str | None:
    if record.error is not None:
        return record.error
    value = record.value
    if not isinstance(value, dict):
        return f"record is a JSON {type(value).__name__}, not an object"
    if value.get(spec.event_time_field) in (None, ""):
        return f"missing event time field {spec.event_time_field!r}"
    key = value.get(spec.dedup_key)
    if key in (None, "") or isinstance(key, dict | list):
        return f"missing or non-scalar dedup key {spec.dedup_key!r}"
    return None


def _typed_row(
    record: dict[str, Any],
    columns: Iterable[Column],
    secret: bytes,
    time_path: tuple[str, ...],
    time_format: str,
) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for col in columns:
        value = _lookup(record, col.path)
        if col.path == time_path:
            row[col.name] = parse_event_time(value, time_format)
            continue
        if col.mask is not None:
            value = mask(value, col.mask, secret)
        try:
            row[col.name] = cast(value, col.type)
        except CastError as exc:
            raise CastError(f"column {col.name}: {exc}") from None
    return row


def _lookup(record: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = record
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def cast(value: Any, hive_type: str) -> Any:
    """Cast a JSON value to the Python value of a Hive leaf type, or raise CastError."""
    if value is None:
        return None
    if hive_type == "string":
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    if hive_type.startswith(("array<", "struct<", "map<")):
        return json.dumps(value, separators=(",", ":"))
    if hive_type in ("int", "bigint"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise CastError(f"cannot cast {value!r} to {hive_type}")
        if hive_type == "int" and not -(2**31) <= value < 2**31:
            raise CastError(f"{value} is out of range for int")
        return value
    if hive_type == "double":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CastError(f"cannot cast {value!r} to double")
        return float(value)
    if hive_type == "boolean":
        if not isinstance(value, bool):
            raise CastError(f"cannot cast {value!r} to boolean")
        return value
    if hive_type == "timestamp":
        return parse_event_time(value, "iso8601")
    if hive_type == "date":
        try:
            return date.fromisoformat(str(value))
        except ValueError as exc:
            raise CastError(f"cannot cast {value!r} to date") from exc
    raise CastError(f"unknown column type {hive_type!r}")


def parse_event_time(value: Any, time_format: str) -> datetime:
    """ISO-8601 (offsets allowed, naive means UTC), epoch seconds or millis -> aware UTC."""
    try:
        if time_format == "iso8601" and isinstance(value, str):
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.astimezone(UTC)
        if time_format in ("epoch_seconds", "epoch_millis") and not isinstance(value, bool):
            seconds = float(value) / (1000 if time_format == "epoch_millis" else 1)
            return datetime.fromtimestamp(seconds, UTC)
    except (ValueError, TypeError, OverflowError, OSError):
        pass
    raise CastError(f"event time {value!r} is not {time_format}")
