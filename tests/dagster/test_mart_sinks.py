"""Mart outputs through the sink interface (lake.mart_sinks): each shipped sink's output
for one day, a new sink added as one class, and per-day metadata of a range run."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, materialize

from assets.marts import build_mart_asset
from lake.mart_build import MartBuild
from lake.mart_sinks import (
    AlertNotices,
    LakeParquet,
    RedshiftFiles,
    SinkOutput,
    WarehouseView,
    write_day,
)
from lake.marts import parse_mart
from lake.storage import LocalStorage, Storage
from lake.streams import load_streams
from lake.warehouse import Warehouse
from orchestration.definitions import daily, ingest_assets

STREAMS = load_streams()
STREAM = "robot_telemetry"
EVENTS_SQL = "-- unique_key: event_id\nSELECT dt, event_id, robot_id FROM cleaned.robot_telemetry\n"
# event day -> event ids; 2026-11-20 is complete (robot_telemetry allows 48 hours): an object
# arrives 2026-11-23 00:10
PLANNED = {
    date(2026, 11, 20): ["a1", "a2", "a3"],
    date(2026, 11, 21): ["b1"],
    date(2026, 11, 22): ["c1", "c2"],
}
RANGE_TAGS = {
    "dagster/asset_partition_range_start": "2026-11-20",
    "dagster/asset_partition_range_end": "2026-11-22",
}


def _spec(tmp_path: Path, name: str, sql: str):
    path = tmp_path / "marts_sql" / f"{name}.sql"
    path.parent.mkdir(exist_ok=True)
    path.write_text(sql)
    return parse_mart(path, set(STREAMS.streams), {name})


@dataclass
class Recorder:
    """A new target: what it saw of each day, and whether the lake's file was there."""

    seen: list[tuple[date | None, int, bool]] = field(default_factory=list)

    def write(self, built: MartBuild, lake: Storage) -> SinkOutput:
        self.seen.append((built.day, built.rows, lake.exists(built.parquet_key)))
        return {"recorded_days": len(self.seen)}


def _ingest(local_lake, write_concatenated, at: datetime, ids: list[str], name: str) -> None:
    records = [
        {"event_id": e, "ts": f"{at:%Y-%m-%dT%H}:0{i}:00Z", "robot_id": "R01"}
        for i, e in enumerate(ids)
    ]
    write_concatenated(local_lake["landing"], STREAM, at, records, name)
    assert materialize(
        ingest_assets(STREAM),
        partition_key=f"{at:%Y-%m-%d-%H}:00",
        resources=local_lake["resources"],
    ).success


def _metadata(instance: DagsterInstance, key: AssetKey, partition: str | None) -> dict:
    [record] = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None),
        limit=10,
    ).records
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def test_a_range_run_gives_each_day_its_own_counts_and_a_new_sink_sees_every_day(
    local_lake, write_concatenated, tmp_path: Path
) -> None:
    for day, ids in PLANNED.items():
        _ingest(
            local_lake,
            write_concatenated,
            datetime(*day.timetuple()[:3], 8, tzinfo=UTC),
            ids,
            f"o{day}",
        )
    _ingest(
        local_lake, write_concatenated, datetime(2026, 11, 23, 0, 10, tzinfo=UTC), ["d1"], "late"
    )
    spec = _spec(tmp_path, "events", EVENTS_SQL)
    recorder = Recorder()
    asset = build_mart_asset(spec, STREAMS, daily, extra_sinks=[recorder])
    instance = DagsterInstance.ephemeral()
    result = materialize(
        [asset], resources=local_lake["resources"], instance=instance, tags=RANGE_TAGS
    )
    assert result.success

    assert recorder.seen == [(day, len(ids), True) for day, ids in PLANNED.items()]
    [check] = result.get_asset_check_evaluations()  # judged on the run's rows
    assert check.metadata["rows_checked"].value == sum(len(ids) for ids in PLANNED.values())
    for n, (day, ids) in enumerate(PLANNED.items(), start=1):
        md = _metadata(instance, AssetKey(["marts", "events"]), str(day))
        assert md["dagster/row_count"] == len(ids)
        [file] = md["files"]
        assert re.fullmatch(rf"marts/events/dt={day}/events-[0-9a-f]{{16}}\.parquet", file)
        assert md["iceberg_table"] == "marts.events" and md["iceberg_files_added"] == 1
        assert md["day_complete"] is (day == date(2026, 11, 20))
        assert md["redshift_files"] == [
            "redshift/events/create_table.sql",
            f"redshift/events/dt={day}/manifest.json",
            f"redshift/events/dt={day}/load.sql",
        ]
        assert (md["warehouse_table"], md["warehouse_pending"]) == ("marts.events", "")
        assert (md["missing_inputs"], md["empty_inputs"]) == ([], [])
        assert md["recorded_days"] == n
        # the run's own: its days, the days it built incomplete
        assert md["days"] == [str(d) for d in PLANNED]
        assert md["incomplete_days"] == ["2026-11-21", "2026-11-22"]
        assert [c.name for c in md["dagster/column_schema"].columns] == [
            "dt",
            "event_id",
            "robot_id",
        ]


def test_an_unpartitioned_mart_shows_its_sinks_outputs(
    local_lake, write_concatenated, tmp_path: Path
) -> None:
    _ingest(
        local_lake, write_concatenated, datetime(2026, 11, 21, 8, tzinfo=UTC), ["x1", "x2"], "o"
    )
    sql = "-- partitioned_by: none\nSELECT event_id, robot_id FROM cleaned.robot_telemetry\n"
    spec = _spec(tmp_path, "all_events", sql)
    recorder = Recorder()
    instance = DagsterInstance.ephemeral()
    assert materialize(
        [build_mart_asset(spec, STREAMS, daily, extra_sinks=[recorder])],
        resources=local_lake["resources"],
        instance=instance,
    ).success
    md = _metadata(instance, AssetKey(["marts", "all_events"]), None)
    assert recorder.seen == [(None, 2, True)]
    assert md["dagster/row_count"] == 2
    [file] = md["files"]
    assert re.fullmatch(r"marts/all_events/all_events-[0-9a-f]{16}\.parquet", file)
    assert md["redshift_files"][-1] == "redshift/all_events/load.sql"
    assert md["recorded_days"] == 1 and md["days"] == []
    assert "day_complete" not in md and "incomplete_days" not in md
    assert md["dagster/table_name"] == "marts.all_events"  # what the warehouse calls it
    assert md["dagster/uri"] == f"{local_lake['lake'].uri}/marts/all_events/"


ANOMALIES_SQL = """-- alerts: true
-- unique_key: anomaly_id
SELECT dt, anomaly_id, summary FROM cleaned.robot_telemetry
"""
DAY = date(2026, 11, 21)


@pytest.fixture
def anomalies_day(tmp_path: Path) -> MartBuild:
    rows = pa.table(
        {
            "dt": pa.array([DAY, DAY], pa.date32()),
            "anomaly_id": ["robot_down:R01", "silent:R02"],
            "summary": ["R01 is down", "R02 is silent"],
        }
    )
    return MartBuild(_spec(tmp_path, "anomalies", ANOMALIES_SQL), DAY, result=rows)


def test_each_shipped_sink_writes_its_target_for_one_day(
    anomalies_day: MartBuild, tmp_path: Path
) -> None:
    lake = LocalStorage(tmp_path / "lake")
    warehouse = Warehouse(tmp_path / "wh" / "w.duckdb")
    published: list[dict] = []

    def publish(subject: str, message: dict) -> str:
        published.append(message)
        return f"msg-{len(published)}"

    sinks = [LakeParquet(), RedshiftFiles(), WarehouseView(warehouse), AlertNotices(publish, "t")]
    written = write_day(anomalies_day, lake, sinks)
    expected_rows = anomalies_day.result.to_pylist()

    key = anomalies_day.parquet_key
    assert key.startswith(f"marts/anomalies/dt={DAY}/anomalies-")
    assert written["files"] == [key]
    assert [o.key for o in lake.list("marts/")] == [key]
    assert pq.read_table(lake.path(key)).to_pylist() == expected_rows

    with duckdb.connect(str(warehouse.path), read_only=True) as con:
        view = con.sql("SELECT * FROM marts.anomalies ORDER BY anomaly_id").to_arrow_table()
    assert view.to_pylist() == expected_rows
    assert (written["warehouse_table"], written["warehouse_pending"]) == ("marts.anomalies", "")

    folder = f"redshift/anomalies/dt={DAY}/"
    assert written["redshift_files"] == [
        "redshift/anomalies/create_table.sql",
        f"{folder}manifest.json",
        f"{folder}load.sql",
    ]
    assert written["redshift_loaded"] is False
    [entry] = json.loads(lake.read(f"{folder}manifest.json"))["entries"]
    assert entry["url"] == lake.uri_of(key)
    assert entry["meta"]["content_length"] == lake.path(key).stat().st_size
    ddl = lake.read("redshift/anomalies/create_table.sql").decode()
    assert ddl.index('"dt" DATE') < ddl.index('"anomaly_id" VARCHAR') < ddl.index('"summary"')
    assert (
        f"DELETE FROM marts.\"anomalies\" WHERE dt = DATE '{DAY}'"
        in lake.read(f"{folder}load.sql").decode()
    )

    assert written["alerts_target"] == "t"
    assert written["alerts_notified"] == ["robot_down:R01", "silent:R02"]
    assert [m["anomaly_id"] for m in published] == ["robot_down:R01", "silent:R02"]
    claim = json.loads(lake.read("_state/alerts/anomalies/robot_down~3aR01.json"))
    assert (claim["anomaly_id"], claim["message_id"]) == ("robot_down:R01", "msg-1")

    again = write_day(anomalies_day, lake, sinks)  # a re-run: claimed, not notified again
    assert (again["alerts_notified"], again["alerts_already_notified"]) == ([], 2)
    assert len(published) == 2


def test_the_lake_sink_comes_first_and_sinks_never_share_a_name(
    anomalies_day: MartBuild, tmp_path: Path
) -> None:
    lake = LocalStorage(tmp_path / "lake")
    with pytest.raises(ValueError, match="LakeParquet must be the first sink"):
        write_day(anomalies_day, lake, [RedshiftFiles(), LakeParquet()])
    assert list(lake.list("")) == []
    with pytest.raises(ValueError, match="repeats files"):
        write_day(anomalies_day, lake, [LakeParquet(), LakeParquet()])
