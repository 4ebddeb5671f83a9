"""The declared streams (streams.yaml), parsed and validated into plain dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lake.config import REPO_ROOT

STREAMS_FILE = REPO_ROOT / "streams.yaml"
FORMATS = ("concatenated_json", "ndjson", "json_records")
TIME_FORMATS = ("iso8601", "epoch_seconds", "epoch_millis")
MASKS = ("hash", "redact")
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


@dataclass(frozen=True)
class StreamSpec:
    name: str
    format: str
    event_time_field: str
    dedup_key: str
    event_time_format: str = "iso8601"
    compression: str = "gzip"
    records_key: str | None = None
    pii: dict[str, str] = field(default_factory=dict)
    allowed_lateness_hours: int = 24
    max_quarantine_ratio: float = 0.05
    description: str = ""
    crawler: CrawlerSettings = field(default_factory=CrawlerSettings)
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES  # larger: quarantined, record_too_large
    # decompressed bytes of one object; beyond: quarantined whole, object_too_large_expanded
    max_object_expanded_bytes: int = DEFAULT_MAX_OBJECT_EXPANDED_BYTES


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
    if not name.replace("_", "").isalnum() or not name[0].isalpha() or name != name.lower():
        raise StreamConfigError(f"{where}: names are lower-case letters, digits and '_'")
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
    pii = {str(k): str(v) for k, v in (body.get("pii") or {}).items()}
    for field_path, mask in pii.items():
        if mask not in MASKS:
            raise StreamConfigError(f"{where}: pii {field_path!r} mask {mask!r} not in {MASKS}")
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
        **_parse_size_limits(body, where),
    )


def _parse_size_limits(body: dict[str, Any], where: str) -> dict[str, int]:
    record = int(body.get("max_record_bytes", DEFAULT_MAX_RECORD_BYTES))
    expanded = int(body.get("max_object_expanded_bytes", DEFAULT_MAX_OBJECT_EXPANDED_BYTES))
    if not 0 < record <= RECORD_BYTES_CEILING:
        raise StreamConfigError(
            f"{where}: max_record_bytes must be between 1 and {RECORD_BYTES_CEILING}"
        )
    if expanded < record:
        raise StreamConfigError(f"{where}: max_object_expanded_bytes must be >= max_record_bytes")
    return {"max_record_bytes": record, "max_object_expanded_bytes": expanded}


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
    )
    if settings.sample_bytes <= 0 or settings.sample_records <= 0:
        raise StreamConfigError(f"{where}: crawler sample sizes must be positive")
    return settings
