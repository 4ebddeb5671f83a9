"""The maintenance asset compacting a stream's dedup keys by event date (issue 15): what
the runs left outside a date's compacted file is merged into it, shown in the metadata."""

import gzip
import json
from datetime import UTC, date, datetime

import pyarrow.parquet as pq
from dagster import AssetKey, materialize

from lake import layout
from lake.cleaning.hour import clean_hour
from lake.cleaning.key_files import ABSORBED, COMPACT_AFTER_FILES
from lake.firehose import hour_prefix, object_key
from lake.streams import load_streams
from orchestration.definitions import maintenance_assets
from tests.incremental_lake import TABLE

SPEC = load_streams()["robot_telemetry"]
DAY = "2026-11-21"
KEY_COMPACTION = AssetKey(["compaction", "dedup_keys", SPEC.name])


def _clean_hours(local_lake, hours: int, tag: str = "o") -> None:
    """One object of 5 records in each of `hours` arrival hours, all of event date DAY."""
    landing, lake = local_lake["landing"], local_lake["lake"]
    for h in range(hours):
        hour = datetime(2026, 11, 21, h, tzinfo=UTC)
        records = [{"event_id": f"{tag}{h}-{r}", "ts": f"{DAY}T{h:02d}:00:0{r}Z"} for r in range(5)]
        key = object_key(SPEC.name, hour, object_id=f"{tag}{h}")
        landing.write(key, gzip.compress("".join(map(json.dumps, records)).encode()))
        objects = list(landing.list(hour_prefix(SPEC.name, hour)))
        clean_hour(SPEC, TABLE, landing, lake, hour, objects)


def test_the_key_compaction_asset_merges_the_hour_files_the_runs_left(local_lake) -> None:
    hours = COMPACT_AFTER_FILES - 1  # too few for a run to compact the date itself
    _clean_hours(local_lake, hours)
    _clean_hours(local_lake, 1, "again")  # hour 0's second run: a run key file beside it
    runs = layout.dedup_run_keys_folder(
        SPEC.name, date(2026, 11, 21), datetime(2026, 11, 21, tzinfo=UTC)
    )
    assert list(local_lake["lake"].list(runs))
    compacted = local_lake["lake"].path(layout.dedup_keys_compacted(SPEC.name, date(2026, 11, 21)))
    assert not compacted.exists()
    [asset] = [a for a in maintenance_assets if a.key == KEY_COMPACTION]

    first = materialize([asset], partition_key=DAY, resources=local_lake["resources"])
    again = materialize([asset], partition_key=DAY, resources=local_lake["resources"])

    assert first.success and again.success
    [done] = [e.materialization.metadata for e in first.get_asset_materialization_events()]
    assert done["compacted"].value is True
    assert done["days_compacted"].value == [DAY]
    assert done["hours_folded"].value == 1
    assert list(local_lake["lake"].list(runs)) == []
    absorbed = json.loads(pq.read_schema(compacted).metadata[ABSORBED])
    assert sorted(absorbed) == [f"20261121T{h:02d}.parquet" for h in range(hours)]
    assert pq.read_metadata(compacted).num_rows == 5 * (hours + 1)
    [nothing] = [e.materialization.metadata for e in again.get_asset_materialization_events()]
    assert nothing["compacted"].value is False
    assert nothing["hours_folded"].value == 0
    assert nothing["days_compacted"].value == []
