"""The cleaned step on a Dagster Pipes subprocess worker (CLEAN_COMPUTE=subprocess) against
the same step in the run's process: two lakes landed alike, one range run each, then their
Iceberg tables, data files, materializations and checks held side by side; and a worker
that raises mid-commit against an in-process step that raises at the same point.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, RetryPolicy, TableSchema, materialize

from lake.firehose import object_key
from lake.iceberg.catalog import LakeTables
from lake.settings import DEFAULTS, Settings
from lake.storage import LocalStorage
from orchestration import pipes_compute
from orchestration.definitions import ingest_assets
from orchestration.resources import resources_from_env

STREAM = "robot_telemetry"
CLEANED = AssetKey(["cleaned", STREAM])
RANGE_TAGS = {
    "dagster/asset_partition_range_start": "2026-11-21-08:00",
    "dagster/asset_partition_range_end": "2026-11-21-09:00",
}
HOURS = ("2026-11-21-08:00", "2026-11-21-09:00")
CRASH = "the worker crashed in the commit"
# differ between any two runs: timings, snapshot ids, the run's file-name token
RUN_BOUND = re.compile(r"(seconds|snapshot_id)$")
RUN_TIMES = ("_ingested_at", "quarantined_at")
TOKEN = re.compile(r"-[0-9a-f]{12}\.parquet|\.v[0-9a-f]{16}\.json")  # file, manifest version


def _record(i: int, hour: int) -> dict:
    return {
        "event_id": f"e-{hour}-{i}",
        "ts": f"2026-11-21T{hour:02d}:{i:02d}:00Z",
        "robot_id": "R01",
        "milking": {"yield_kg": 10.0 + i},
    }


def _land(landing: LocalStorage) -> None:
    """Two hours; hour 9 redelivers a record and holds two bad ones (ratio 2/12 > 0.05)."""
    for hour in (8, 9):
        records = [_record(i, hour) for i in range(5)]
        if hour == 9:
            records += [records[0], {"event_id": "bad-1", "ts": "no time"}, {"ts": "no time"}]
        body = "".join(json.dumps(r) for r in records).encode()
        key = object_key(STREAM, datetime(2026, 11, 21, hour, 7, tzinfo=UTC), object_id=f"o{hour}")
        landing.write(key, gzip.compress(body, mtime=0))


def _lake(root: Path, compute: str) -> tuple[Settings, dict]:
    settings = replace(
        DEFAULTS,
        landing_uri=(root / "landing").as_uri(),
        lake_uri=(root / "lake").as_uri(),
        warehouse_path=str(root / "warehouse.duckdb"),
        clean_compute=compute,
    )
    _land(LocalStorage(root / "landing"))
    return settings, resources_from_env(settings)


def run_range(
    resources: dict,
    assets=None,
    instance: DagsterInstance | None = None,
    tags: dict[str, str] = RANGE_TAGS,
):
    """The stream's ingest assets materialized over a partition range (RANGE_TAGS)."""
    return materialize(
        assets or ingest_assets(STREAM),
        resources=resources,
        instance=instance or DagsterInstance.ephemeral(),
        tags=tags,
        raise_on_error=False,
    )


def _plain(value: object, root: Path) -> object:
    """A metadata value with the lake's folder and the run's file token taken out."""
    value = getattr(value, "value", value)
    value = repr(value) if isinstance(value, TableSchema) else value  # a record: not iterable
    text = json.dumps(value, default=repr, sort_keys=True)
    return json.loads(TOKEN.sub("<token>", text.replace(str(root), "<root>")))


def _materializations(result, root: Path) -> dict[str, dict]:
    return {
        e.partition: {
            k: _plain(v, root)
            for k, v in e.materialization.metadata.items()
            if not RUN_BOUND.search(k)
        }
        for e in result.get_asset_materialization_events()
        if e.asset_key == CLEANED
    }


def _checks(result) -> dict[str, tuple]:
    return {
        c.check_name: (c.passed, c.severity, {k: v.value for k, v in c.metadata.items()})
        for c in result.get_asset_check_evaluations()
    }


def _rows(settings: Settings, namespace: str) -> list[dict]:
    """A table's rows as pyiceberg scans them, without the times the run wrote them."""
    catalog = LakeTables(settings).catalog
    if not catalog.table_exists(f"{namespace}.{STREAM}"):
        return []
    rows = catalog.load_table(f"{namespace}.{STREAM}").scan().to_arrow().to_pylist()
    rows = [{k: v for k, v in r.items() if k not in RUN_TIMES} for r in rows]
    return sorted(rows, key=lambda r: json.dumps(r, default=str, sort_keys=True))


def _data_files(root: Path) -> list[str]:
    """The data files and ledger manifests under the lake, run tokens taken out."""
    lake = root / "lake"
    return sorted(
        TOKEN.sub("<token>", str(p.relative_to(lake)))
        for layer in ("cleaned", "quarantine", "_state/cleaned")
        for p in (lake / layer).rglob("*")
        if p.is_file() and "metadata" not in p.parent.parts  # Iceberg's: uuid-named
    )


def outcome(settings: Settings, result, root: Path) -> dict:
    """What a cleaning run left, to compare between computes: rows, files, metadata, checks."""
    return {
        "cleaned": _rows(settings, "cleaned"),
        "quarantine": _rows(settings, "quarantine"),
        "files": _data_files(root),
        "metadata": _materializations(result, root),
        "checks": _checks(result),
    }


def test_a_subprocess_worker_cleans_exactly_as_the_run_process_does(tmp_path: Path) -> None:
    outcomes = {}
    for compute in ("inprocess", "subprocess"):
        root = tmp_path / compute
        settings, resources = _lake(root, compute)
        result = run_range(resources)
        assert result.success
        outcomes[compute] = outcome(settings, result, root)
    local, worker = outcomes["inprocess"], outcomes["subprocess"]
    assert len(local["cleaned"]) == 10 and len(local["quarantine"]) == 2
    assert set(local["metadata"]) == set(HOURS)
    assert local["metadata"]["2026-11-21-09:00"]["batch_duplicates_dropped"] == 1
    assert local["checks"]["quarantine_ratio"][0] is False  # 2 of 13 records > 0.05
    assert local["checks"]["records_reconcile"][0] is True
    for part in local:
        assert worker[part] == local[part], part


def _refuse(*args: object, **kwargs: object) -> None:
    raise RuntimeError(CRASH)


def _no_retry_assets(monkeypatch: pytest.MonkeyPatch) -> list:
    monkeypatch.setattr("assets.hourly.ASSET_RETRY_POLICY", RetryPolicy(max_retries=0))
    return ingest_assets(STREAM)


def test_a_worker_that_raises_fails_the_step_and_leaves_what_an_in_process_crash_leaves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assets = _no_retry_assets(monkeypatch)
    left = {}
    with monkeypatch.context() as patched:  # the in-process step raises in its first commit
        patched.setattr("lake.cleaning.commit.commit_files", _refuse)
        _, resources = _lake(tmp_path / "inprocess", "inprocess")
        assert not run_range(resources, assets).success
    left["inprocess"] = _data_files(tmp_path / "inprocess")

    # the worker raises at the same point (tests/dagster/pipes_crashing_worker.py)
    monkeypatch.setattr(pipes_compute, "WORKER_MODULE", "tests.dagster.pipes_crashing_worker")
    settings, resources = _lake(tmp_path / "subprocess", "subprocess")
    instance = DagsterInstance.ephemeral()
    result = run_range(resources, assets, instance)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_key == f"cleaned__{STREAM}"
    # the worker's own error and traceback, in the run's event log (the UI shows it)
    errors = [
        e.dagster_event.event_specific_data.error
        for e in instance.all_logs(result.run_id)
        if e.dagster_event and getattr(e.dagster_event.event_specific_data, "error", None)
    ]
    assert any(CRASH in e.message and "commit_files" in "".join(e.stack) for e in errors)
    left["subprocess"] = _data_files(tmp_path / "subprocess")
    assert left["subprocess"] == left["inprocess"]
    assert not [f for f in left["subprocess"] if f.startswith("_state/")]  # no manifest
    assert _rows(settings, "cleaned") == []  # nothing committed

    monkeypatch.setattr(pipes_compute, "WORKER_MODULE", "workers.clean")
    assert run_range(resources, assets).success  # the next run cleans every object, once
    assert len(_rows(settings, "cleaned")) == 10
