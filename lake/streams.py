"""The declared streams (streams.yaml), parsed and validated into plain dataclasses."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from lake.json_fields import JsonFieldError, JsonSettings, parse_json_settings
from lake.pii_rules import PiiRuleError, PiiRules, parse_pii_rules
from lake.settings import REPO_ROOT
from lake.stream_operations import Operations, OperationsError, entry_version, parse_operations

STREAMS_FILE = REPO_ROOT / "streams.yaml"
FORMATS = ("concatenated_json", "ndjson", "json_records")
TIME_FORMATS = ("iso8601", "epoch_seconds", "epoch_millis")
CHANGE_POLICIES = ("update_in_database", "log", "merge_new_columns")
COMPATIBILITY = ("none", "backward", "forward", "full")
# Size guards (docs/cleaning.md, "Limits and memory"). A record is parsed whole by DuckDB
# or Python, so its ceiling keeps one parse well inside the cleaning's memory; Firehose's
# largest buffer is 128 MiB before compression, twice that is the default object cap.
DEFAULT_MAX_RECORD_BYTES = 32 << 20
RECORD_BYTES_CEILING = 64 << 20
DEFAULT_MAX_OBJECT_EXPANDED_BYTES = 256 << 20


class StreamConfigError(ValueError):
    """streams.yaml is missing something or has a value the pipeline does not know."""


@dataclass(frozen=True)
class CrawlerSettings:
    """How the crawler samples and what it does with a schema change (Glue's vocabulary)."""

    sample_bytes: int = 1_048_576  # Glue reads the first 1 MB of each object...
    sample_records: int = 1000  # ...or its first 1,000 records
    change_policy: str = "update_in_database"  # update_in_database | log | merge_new_columns
    compatibility: str = "backward"  # none | backward | forward | full
    partition_keys: tuple[str, ...] = ()  # names for Firehose's YYYY/MM/DD/HH folders
    # JSON fields found by the crawler (docs/schema-rules.md, 3a): a struct with more field
    # sets than this in one crawl's sample is proposed; a struct/array-versus-other
    # conflict under one key makes that key JSON text (applied) unless turned off
    json_max_shapes: int = 20
    json_on_conflict: bool = True


# Stream and mart names become S3 prefixes, Glue/Redshift/DuckDB table names and Dagster
# asset keys: plain ASCII identifiers only, so none of them needs quoting or escaping.
_PLAIN_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
PLAIN_NAME_RULE = "names are 1-63 of a-z, 0-9 and '_', starting with a letter"


def is_plain_name(name: object) -> bool:
    return isinstance(name, str) and _PLAIN_NAME.fullmatch(name) is not None


REDSHIFT_MAX_COLUMNS = 1600
REDSHIFT_MAX_NAME_BYTES = 127
MAX_NESTING_DEPTH = 200  # the crawler's types recurse per level: keep far from Python's limit
MAX_KEY_BYTES = 65536


@dataclass(frozen=True)
class RecordLimits:
    """What one record (and the stream's table) may hold; past it, records are quarantined
    with a reason code instead of breaking a run (docs/cleaning.md, "Limits")."""

    max_columns: int = 1000  # cleaned columns (leaves) of the stream; Redshift allows 1,600
    max_name_bytes: int = 127  # a cleaned column name; Redshift allows 127, Glue 255
    # Event times outside [earliest, arrival hour + ahead] cannot be partitioned sensibly
    earliest_event_time: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    max_event_time_ahead_hours: int = 168
    max_nesting_depth: int = 100  # levels of objects/arrays in a record (the record is 1)
    max_key_bytes: int = 1024  # one JSON key (UTF-8); the catalog keeps every original key
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES  # larger: quarantined, record_too_large
    # decompressed bytes of one object; beyond: quarantined whole, object_too_large_expanded
    max_object_expanded_bytes: int = DEFAULT_MAX_OBJECT_EXPANDED_BYTES


@dataclass(frozen=True)
class StreamSpec:
    name: str
    format: str
    event_time_field: str
    dedup_key: str
    event_time_format: str = "iso8601"
    compression: str = "gzip"
    records_key: str | None = None
    pii: PiiRules = field(default_factory=PiiRules)
    allowed_lateness_hours: int = 24
    max_quarantine_ratio: float = 0.05
    description: str = ""
    crawler: CrawlerSettings = field(default_factory=CrawlerSettings)
    limits: RecordLimits = field(default_factory=RecordLimits)
    json: JsonSettings = field(default_factory=JsonSettings)  # json_fields: kept as JSON text
    operations: Operations = field(default_factory=Operations)  # owners, freshness window
    code_version: str | None = None  # hash of the streams.yaml entry (None: not from the file)

    @property
    def holds_pii(self) -> bool:
        """Whether the stream declares personal data (any PII path, key or value rule)."""
        return bool(self.pii.paths or self.pii.keys or self.pii.values)

    def with_limits(self, **changes: Any) -> StreamSpec:
        """This stream with some of its limits changed (tests, benchmarks)."""
        return replace(self, limits=replace(self.limits, **changes))


@dataclass(frozen=True)
class StreamCatalog:
    database: str
    streams: dict[str, StreamSpec]

    def __getitem__(self, name: str) -> StreamSpec:
        try:
            return self.streams[name]
        except KeyError:
            raise StreamConfigError(
                f"unknown stream {name!r}; declared: {', '.join(self.streams)}"
            ) from None


def load_streams(path: str | Path = STREAMS_FILE) -> StreamCatalog:
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise StreamConfigError(f"cannot read {path}: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("streams"), dict):
        raise StreamConfigError(f"{path}: expected a mapping with a 'streams' mapping")
    streams = {name: _parse_stream(name, body or {}, path) for name, body in doc["streams"].items()}
    return StreamCatalog(database=str(doc.get("catalog_database", "firehose_raw")), streams=streams)


def _parse_stream(name: str, body: dict[str, Any], path: str | Path) -> StreamSpec:
    where = f"{path}: stream {name!r}"
    if not is_plain_name(name):
        raise StreamConfigError(f"{where}: {PLAIN_NAME_RULE}")
    for required in ("format", "event_time", "dedup_key"):
        if required not in body:
            raise StreamConfigError(f"{where}: '{required}' is required")
    fmt = body["format"]
    if fmt not in FORMATS:
        raise StreamConfigError(f"{where}: format {fmt!r} is not one of {FORMATS}")
    if fmt == "json_records" and not body.get("records_key"):
        raise StreamConfigError(f"{where}: format json_records needs 'records_key'")
    event_time = body["event_time"]
    if isinstance(event_time, str):
        event_time = {"field": event_time}
    time_format = event_time.get("format", "iso8601")
    if time_format not in TIME_FORMATS:
        raise StreamConfigError(f"{where}: event_time format {time_format!r} not in {TIME_FORMATS}")
    try:
        pii = parse_pii_rules(body, where)
    except PiiRuleError as exc:
        raise StreamConfigError(str(exc)) from None
    try:
        reserved = (str(event_time["field"]), str(body["dedup_key"]))
        json_settings = parse_json_settings(body.get("json_fields"), where, reserved)
    except JsonFieldError as exc:
        raise StreamConfigError(str(exc)) from None
    try:
        operations = parse_operations(body, where)
    except OperationsError as exc:
        raise StreamConfigError(str(exc)) from None
    return StreamSpec(
        name=name,
        format=fmt,
        event_time_field=str(event_time["field"]),
        event_time_format=time_format,
        dedup_key=str(body["dedup_key"]),
        compression=body.get("compression", "gzip"),
        records_key=body.get("records_key"),
        pii=pii,
        allowed_lateness_hours=int(body.get("allowed_lateness_hours", 24)),
        max_quarantine_ratio=float(body.get("max_quarantine_ratio", 0.05)),
        description=body.get("description", ""),
        crawler=_parse_crawler(body.get("crawler") or {}, where),
        limits=_parse_limits(body.get("limits") or {}, where),
        json=json_settings,
        operations=operations,
        code_version=entry_version(body),
    )


def _parse_limits(body: dict[str, Any], where: str) -> RecordLimits:
    defaults = RecordLimits()
    unknown = set(body) - set(RecordLimits.__dataclass_fields__)
    if unknown:
        raise StreamConfigError(f"{where}: unknown limits {sorted(unknown)}")
    try:
        earliest = _utc(body.get("earliest_event_time", defaults.earliest_event_time))
        limits = RecordLimits(
            max_columns=int(body.get("max_columns", defaults.max_columns)),
            max_name_bytes=int(body.get("max_name_bytes", defaults.max_name_bytes)),
            earliest_event_time=earliest,
            max_event_time_ahead_hours=int(
                body.get("max_event_time_ahead_hours", defaults.max_event_time_ahead_hours)
            ),
            max_nesting_depth=int(body.get("max_nesting_depth", defaults.max_nesting_depth)),
            max_key_bytes=int(body.get("max_key_bytes", defaults.max_key_bytes)),
            max_record_bytes=int(body.get("max_record_bytes", defaults.max_record_bytes)),
            max_object_expanded_bytes=int(
                body.get("max_object_expanded_bytes", defaults.max_object_expanded_bytes)
            ),
        )
    except (TypeError, ValueError) as exc:
        raise StreamConfigError(f"{where}: bad limits: {exc}") from None
    if not 1 <= limits.max_columns <= REDSHIFT_MAX_COLUMNS:
        raise StreamConfigError(f"{where}: limits.max_columns must be 1..{REDSHIFT_MAX_COLUMNS}")
    if not 32 <= limits.max_name_bytes <= REDSHIFT_MAX_NAME_BYTES:
        raise StreamConfigError(
            f"{where}: limits.max_name_bytes must be 32..{REDSHIFT_MAX_NAME_BYTES}"
        )
    if not 2 <= limits.max_nesting_depth <= MAX_NESTING_DEPTH:
        raise StreamConfigError(f"{where}: limits.max_nesting_depth must be 2..{MAX_NESTING_DEPTH}")
    if not 1 <= limits.max_key_bytes <= MAX_KEY_BYTES:
        raise StreamConfigError(f"{where}: limits.max_key_bytes must be 1..{MAX_KEY_BYTES}")
    if limits.max_event_time_ahead_hours < 0:
        raise StreamConfigError(f"{where}: limits.max_event_time_ahead_hours must be >= 0")
    if not 0 < limits.max_record_bytes <= RECORD_BYTES_CEILING:
        raise StreamConfigError(
            f"{where}: limits.max_record_bytes must be between 1 and {RECORD_BYTES_CEILING}"
        )
    if limits.max_object_expanded_bytes < limits.max_record_bytes:
        raise StreamConfigError(
            f"{where}: limits.max_object_expanded_bytes must be >= max_record_bytes"
        )
    return limits


def _utc(value: Any) -> datetime:
    """A date or date-time from YAML (which parses unquoted ones itself), in UTC."""
    if isinstance(value, datetime):
        moment = value
    elif hasattr(value, "isoformat"):  # a date
        moment = datetime.fromisoformat(value.isoformat())
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if moment.astimezone(UTC).year < 1:
        raise ValueError("earliest_event_time is before year 1")
    return moment.astimezone(UTC)


def _parse_crawler(body: dict[str, Any], where: str) -> CrawlerSettings:
    defaults = CrawlerSettings()
    unknown = set(body) - {f for f in CrawlerSettings.__dataclass_fields__}
    if unknown:
        raise StreamConfigError(f"{where}: unknown crawler settings {sorted(unknown)}")
    policy = str(body.get("change_policy", defaults.change_policy)).lower()
    if policy not in CHANGE_POLICIES:
        raise StreamConfigError(
            f"{where}: crawler change_policy {policy!r} not in {CHANGE_POLICIES}"
        )
    compatibility = str(body.get("compatibility", defaults.compatibility)).lower()
    if compatibility not in COMPATIBILITY:
        raise StreamConfigError(
            f"{where}: crawler compatibility {compatibility!r} not in {COMPATIBILITY}"
        )
    settings = CrawlerSettings(
        sample_bytes=int(body.get("sample_bytes", defaults.sample_bytes)),
        sample_records=int(body.get("sample_records", defaults.sample_records)),
        change_policy=policy,
        compatibility=compatibility,
        partition_keys=tuple(str(k) for k in body.get("partition_keys", ())),
        json_max_shapes=int(body.get("json_max_shapes", defaults.json_max_shapes)),
        json_on_conflict=body.get("json_on_conflict", defaults.json_on_conflict),
    )
    if settings.json_max_shapes < 1 or not isinstance(settings.json_on_conflict, bool):
        raise StreamConfigError(
            f"{where}: crawler json_max_shapes must be >= 1, json_on_conflict true or false"
        )
    if settings.sample_bytes <= 0 or settings.sample_records <= 0:
        raise StreamConfigError(f"{where}: crawler sample sizes must be positive")
    return settings
