"""Every setting the pipeline reads, in one typed object read at run time.

Each field is read from the environment variable of its name in upper case (`lake_uri`
from `LAKE_URI`); an unset or empty variable keeps the embedded default. `Settings()`
is the embedded defaults alone, `Settings.from_env()` the defaults under the
environment. A value that does not parse fails with a SettingsError naming its variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "data"

SSE_MODES = ("AES256", "aws:kms")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*(B|[KMGT]i?B)$", re.IGNORECASE)  # DuckDB's spelling


class SettingsError(ValueError):
    """An environment variable holds a value the pipeline cannot use."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError("must be a whole number of at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise ValueError("must be a number above 0")
    return value


def _sqs_wait(text: str) -> int:
    value = _positive_int(text)
    if value > 20:
        raise ValueError("must be at most 20 (SQS's longest wait)")
    return value


def _iso_date(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise ValueError("must be a date like 2026-01-01") from None


def _memory(text: str) -> str:
    if not _MEMORY.match(text):
        raise ValueError("must be an amount like 512MB or 1GB")
    return text


def _sse_mode(text: str) -> str:
    if text not in SSE_MODES:
        raise ValueError(f"must be one of {', '.join(SSE_MODES)}")
    return text


def _log_level(text: str) -> str:
    if text.upper() not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
    return text.upper()


CATALOGS = ("sql", "glue")


def _catalog(text: str) -> str:
    if text.lower() not in CATALOGS:
        raise ValueError(f"must be one of {', '.join(CATALOGS)}")
    return text.lower()


def _namespace(text: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,127}", text):
        raise ValueError("must be lower-case letters, digits and _, starting with a letter")
    return text


CLEAN_COMPUTES = ("inprocess", "subprocess", "ecs")


def _clean_compute(text: str) -> str:
    if text.lower() not in CLEAN_COMPUTES:
        raise ValueError(f"must be one of {', '.join(CLEAN_COMPUTES)}")
    return text.lower()


def _names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise ValueError("must be one or more names separated by commas")
    return names


def _text(text: str) -> str:
    return text


def _setting(default: Any, parse: Callable[[str], Any] = _text, secret: bool = False) -> Any:
    return field(default=default, repr=not secret, metadata={"parse": parse})


@dataclass(frozen=True)
class Settings:
    """The pipeline's settings; see the README's configuration table for what each does."""

    # locations: `file://` URIs are local folders, `s3://bucket/prefix` is S3
    landing_uri: str = _setting((DATA_DIR / "landing").as_uri())
    lake_uri: str = _setting((DATA_DIR / "lake").as_uri())
    warehouse_path: str = _setting(str(DATA_DIR / "warehouse.duckdb"))
    pipeline_start_date: str = _setting("2026-01-01", _iso_date)
    # sensors
    sensor_interval_seconds: int = _setting(5, _positive_int)
    marts_sensor_interval_seconds: int = _setting(30, _positive_int)
    max_objects_per_tick: int = _setting(2000, _positive_int)
    landing_late_hours: int = _setting(6, _positive_int)
    landing_recent_keys: int = _setting(3000, _positive_int)
    landing_sqs_queue_url: str | None = _setting(None)
    landing_sqs_wait_seconds: int = _setting(2, _sqs_wait)
    reconcile_interval_seconds: int = _setting(600, _positive_int)
    reconcile_days: int = _setting(7, _positive_int)
    reconcile_grace_minutes: int = _setting(15, _positive_int)
    # S3
    s3_sse: str | None = _setting(None, _sse_mode)
    s3_sse_kms_key_id: str | None = _setting(None)
    s3_read_attempts: int = _setting(5, _positive_int)
    # cleaning
    pii_hash_key: str | None = _setting(None, secret=True)
    pii_hash_key_secret_id: str | None = _setting(None)
    clean_chunk_bytes: int = _setting(128 << 20, _positive_int)
    clean_memory_limit: str = _setting("1GB", _memory)
    retype_max_objects: int = _setting(1000, _positive_int)
    glue_database: str | None = _setting(None)
    # where the heavy steps run, each on its own: cleaning (assets/cleaned.py) and the crawl
    # (assets/schema.py), in the run's process or on a Dagster Pipes worker (a local
    # subprocess, or an ECS task of the lake's image: the CLEAN_ECS_* task serves both)
    clean_compute: str = _setting("inprocess", _clean_compute)
    crawl_compute: str = _setting("inprocess", _clean_compute)
    # hours of a range run cleaned side by side (lake.cleaning.parallel); 1: one after another
    clean_workers: int = _setting(1, _positive_int)
    clean_ecs_cluster: str | None = _setting(None)
    clean_ecs_task_definition: str | None = _setting(None)
    clean_ecs_subnets: tuple[str, ...] = _setting((), _names)
    clean_ecs_container: str = _setting("worker")
    # Iceberg tables (lake.iceberg)
    lake_catalog: str = _setting("sql", _catalog)
    iceberg_catalog_uri: str | None = _setting(None)  # None: iceberg.db beside a local lake
    cleaned_namespace: str = _setting("cleaned", _namespace)
    quarantine_namespace: str = _setting("quarantine", _namespace)
    marts_namespace: str = _setting("marts", _namespace)
    # table maintenance (lake.iceberg.compaction, lake.iceberg.expiry)
    compaction_target_bytes: int = _setting(128 << 20, _positive_int)
    compaction_min_files: int = _setting(8, _positive_int)
    compaction_days: int = _setting(3, _positive_int)
    snapshot_retention_hours: int = _setting(168, _positive_int)
    iceberg_max_snapshots: int = _setting(200, _positive_int)
    # marts and warehouse
    warehouse_lock_wait_seconds: float = _setting(5.0, _positive_float)
    alerts_sns_topic_arn: str | None = _setting(None)
    redshift_workgroup: str | None = _setting(None)
    redshift_cluster_id: str | None = _setting(None)
    redshift_database: str = _setting("dev")
    redshift_db_user: str | None = _setting(None)
    redshift_secret_arn: str | None = _setting(None)
    redshift_iam_role: str = _setting("default")
    redshift_load_timeout_seconds: float = _setting(900.0, _positive_float)
    # the launcher (`make dev`, `make ui`)
    run_log_level: str = _setting("INFO", _log_level)
    stop_grace_seconds: float = _setting(60.0, _positive_float)

    def __post_init__(self) -> None:
        if self.s3_sse_kms_key_id and self.s3_sse != "aws:kms":
            raise SettingsError("S3_SSE_KMS_KEY_ID needs S3_SSE=aws:kms")
        ecs = [env_name(n) for n in ("clean_compute", "crawl_compute") if getattr(self, n) == "ecs"]
        if ecs and not (
            self.clean_ecs_cluster and self.clean_ecs_task_definition and self.clean_ecs_subnets
        ):
            raise SettingsError(
                f"{' and '.join(ecs)}=ecs needs CLEAN_ECS_CLUSTER, CLEAN_ECS_TASK_DEFINITION and "
                "CLEAN_ECS_SUBNETS"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The embedded defaults, overridden by every variable set and not empty."""
        env = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            name = env_name(f.name)
            text = env.get(name, "").strip()
            if not text:
                continue
            try:
                values[f.name] = f.metadata["parse"](text)
            except ValueError as exc:
                shown = "(hidden)" if not f.repr else repr(text)
                raise SettingsError(f"{name}={shown}: {exc}") from None
        return cls(**values)

    def as_env(self) -> dict[str, str]:
        """The variables that give these settings back through from_env, secrets left out
        (a worker gets those from its own environment)."""
        env = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.repr and value is not None and value != ():
                env[env_name(f.name)] = ",".join(value) if isinstance(value, tuple) else str(value)
        return env


def env_name(field_name: str) -> str:
    """The environment variable of a Settings field."""
    return field_name.upper()


def env_names() -> list[str]:
    """Every environment variable Settings reads, in field order."""
    return [env_name(f.name) for f in fields(Settings)]


DEFAULTS = Settings()  # the embedded defaults, for parameters of the core's functions
