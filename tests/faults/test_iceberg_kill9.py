"""kill -9 of a cleaning run after it wrote its files and before its Iceberg commit: the
tables' current snapshot and what they scan stay as they were, and the next run commits
the objects once (one append snapshot, no duplicates).

The run is a real process (tests/faults/killed_run.py) over a real lake folder and the
embedded SQLite catalog beside it; it SIGKILLs itself right after its last write before
the commit (the last dedup-keys write: after it come the commit, then the manifests), a
point found from an identical run that is not killed.
"""

from __future__ import annotations

import json
import signal
from dataclasses import replace
from pathlib import Path

import pytest
from fault_kit import HOUR, STREAM, expected_ids, land, records_for

from lake.cleaning.hour import clean_hour
from lake.firehose import hour_prefix
from lake.iceberg.catalog import LakeTables
from lake.iceberg.scan import committed_keys
from lake.settings import DEFAULTS
from lake.storage import LocalStorage
from lake.streams import load_streams
from tests.faults import killed_run

SPEC = load_streams()[STREAM]
OBJECTS = records_for(n_objects=4, per_object=10)
EARLIER, LATER = OBJECTS[:2], OBJECTS[2:]  # a first micro-batch, then the run killed
LEDGER = f"_state/cleaned/{STREAM}/"


def _settings(root: Path):
    return replace(
        DEFAULTS, lake_uri=(root / "lake").as_uri(), landing_uri=(root / "landing").as_uri()
    )


def _clean(root: Path, first: int | None = None) -> None:
    """Clean the hour's objects (the `first` of them only: a sensor's earlier batch)."""
    settings = _settings(root)
    landing, lake = LocalStorage(root / "landing"), LocalStorage(root / "lake")
    objects = list(landing.list(hour_prefix(STREAM, HOUR)))[:first]
    clean_hour(
        SPEC, None, landing, lake, HOUR, objects, settings=settings, tables=LakeTables(settings)
    )


def _setup(root: Path, earlier_batch: bool) -> None:
    """The lake before the run under test: every object landed, the earlier batch
    cleaned and committed (or nothing)."""
    land(LocalStorage(root / "landing"), OBJECTS)
    if earlier_batch:
        _clean(root, first=len(EARLIER))


def _run(root: Path, kill_after: int, full_refresh: bool = False):
    return killed_run.run(
        "clean",
        kill_after,
        {"LAKE_URI": (root / "lake").as_uri(), "LANDING_URI": (root / "landing").as_uri()},
        stream=STREAM,
        landing=str(root / "landing"),
        lake=str(root / "lake"),
        hour=HOUR.isoformat(),
        iceberg=True,
        full_refresh=full_refresh,
    )


def _state(tables: LakeTables, layer: str) -> tuple[int | None, int, list[tuple]]:
    """(current snapshot, metadata versions, rows) of a table; (None, 0, []) when absent."""
    table = tables.load(layer, STREAM)
    if table is None:
        return None, 0, []
    snapshot = table.current_snapshot()
    rows = table.scan().to_arrow().sort_by(_order(layer)).to_pylist()
    return (
        snapshot.snapshot_id if snapshot else None,
        len(table.metadata.metadata_log) + 1,
        [tuple(sorted(r.items())) for r in rows],
    )


def _order(layer: str) -> list[tuple[str, str]]:
    key = "_source_key" if layer == "cleaned" else "source_key"
    return [(key, "ascending"), ("_position" if layer == "cleaned" else "position", "ascending")]


def _kill_point(writes: list[str]) -> int:
    """The count of writes up to the last one before the first manifest: the run's
    pending-commit marker, written just before the commit."""
    first_manifest = next(i for i, k in enumerate(writes) if k.startswith(LEDGER))
    assert {k.split("/")[0] for k in writes[:first_manifest]} >= {"cleaned", "quarantine"}
    assert writes[first_manifest - 2].startswith("_state/keys/")
    assert writes[first_manifest - 1].startswith(f"_state/commits/{STREAM}/")
    # after the manifests only the hour's running totals (lake.hour_totals)
    assert all(k.startswith((LEDGER, "_state/totals/")) for k in writes[first_manifest:])
    return first_manifest


@pytest.mark.parametrize("earlier_batch", [True, False], ids=["table-with-a-batch", "no-table"])
def test_kill_9_before_the_commit_leaves_the_tables_then_the_next_run_commits_once(
    tmp_path: Path, earlier_batch: bool
) -> None:
    dry, root = tmp_path / "dry", tmp_path / "killed"
    _setup(dry, earlier_batch)
    done = _run(dry, 0)
    assert done.returncode == 0, done.stderr
    point = _kill_point(json.loads(done.stdout))

    _setup(root, earlier_batch)
    tables = LakeTables(_settings(root))
    before = {layer: _state(tables, layer) for layer in ("cleaned", "quarantine")}
    killed = _run(root, point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    lake = LocalStorage(root / "lake")
    written = [k for k in json.loads(done.stdout)[:point] if k.startswith("cleaned/")]
    on_disk = {i.key for i in lake.list("cleaned/") if i.key.endswith(".parquet")}
    referenced = set(committed_keys(LakeTables(_settings(root)), "cleaned", STREAM) or [])
    assert written and len(on_disk - referenced) == len(written)  # the files are there...
    for layer in ("cleaned", "quarantine"):  # ...and no reader of the catalog sees them
        assert _state(LakeTables(_settings(root)), layer) == before[layer], layer
    committed_objects = len(list(lake.list(LEDGER)))
    assert committed_objects == (len(EARLIER) if earlier_batch else 0)

    _clean(root)  # the next run
    tables = LakeTables(_settings(root))
    cleaned = tables.load("cleaned", STREAM)
    ids = cleaned.scan().to_arrow()["event_id"].to_pylist()
    assert len(ids) == len(set(ids)) == len(expected_ids(OBJECTS))
    assert set(ids) == expected_ids(OBJECTS)
    newly = len(expected_ids(OBJECTS)) - (len(expected_ids(EARLIER)) if earlier_batch else 0)
    for layer, added in (("cleaned", newly), ("quarantine", len(OBJECTS) - committed_objects)):
        table = tables.load(layer, STREAM)
        snapshots = table.snapshots()
        assert snapshots[-1].parent_snapshot_id == before[layer][0]
        assert len(snapshots) == (2 if earlier_batch else 1), layer  # one commit for the run
        summary = snapshots[-1].summary
        assert summary.operation.value == "append"
        assert int(summary.additional_properties["added-records"]) == added, layer
        assert "deleted-data-files" not in summary.additional_properties
    quarantined = tables.load("quarantine", STREAM).scan().to_arrow()
    assert sorted(quarantined["source_key"].to_pylist()) == sorted(
        i.key for i in LocalStorage(root / "landing").list(hour_prefix(STREAM, HOUR))
    )  # one bad record an object, each once

    _clean(root)  # nothing left to do: no new snapshot
    after = LakeTables(_settings(root)).load("cleaned", STREAM)
    assert after.current_snapshot().snapshot_id == cleaned.current_snapshot().snapshot_id


def test_kill_9_of_a_full_refresh_before_its_commit_leaves_the_scan_unchanged(
    tmp_path: Path,
) -> None:
    dry, root = tmp_path / "dry", tmp_path / "killed"
    for lake_root in (dry, root):
        land(LocalStorage(lake_root / "landing"), OBJECTS)
        _clean(lake_root)
    done = _run(dry, 0, full_refresh=True)
    assert done.returncode == 0, done.stderr
    point = _kill_point(json.loads(done.stdout))
    tables = LakeTables(_settings(root))
    before = {layer: _state(tables, layer) for layer in ("cleaned", "quarantine")}

    killed = _run(root, point, full_refresh=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    after = {layer: _state(LakeTables(_settings(root)), layer) for layer in before}
    for layer in before:
        assert after[layer][:2] == before[layer][:2], layer  # no commit: same snapshot
    for layer in before:
        assert after[layer][2] == before[layer][2], layer  # fails: the rows were rewritten
