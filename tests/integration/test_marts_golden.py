"""Golden tests on simulator data: what the marts must show, worked out from the raw records.

A day and a half of the farm, its portal and its AWS account is simulated, crawled,
cleaned and built into every mart with the lake core (as the Dagster assets do), then
the pipeline runs micro-batch by micro-batch through a forced robot breakdown.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import shutil
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from lake.catalog_store import Catalog
from lake.cleaning.columns import columns_from_table
from lake.cleaning.hour import clean_hours
from lake.crawler import crawl_objects
from lake.firehose import hour_prefix, object_key, parse_key
from lake.mart_sinks import AlertNotices
from lake.marts import load_marts
from lake.pii import hash_key
from lake.simulator import ObjectWritten, Simulator, SimulatorConfig
from lake.storage import LocalStorage
from lake.streams import load_streams
from lake.warehouse import Warehouse
from tests.mart_days import build_and_write

START = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
BREAKDOWN = datetime(2026, 11, 21, 9, 32, tzinfo=UTC)
INTERVAL = timedelta(minutes=5)
MART_ORDER = [  # dependency order (the funnel reads the sessions mart)
    "milking_per_cow_daily",
    "robot_health_hourly",
    "robot_anomalies",
    "clickstream_sessions_daily",
    "clickstream_funnel_daily",
    "security_events_daily",
]


class Pipeline:
    """landing -> schema -> cleaned -> marts -> alerts, as the sensors would run it."""

    def __init__(self, root: Path) -> None:
        self.landing, self.lake = LocalStorage(root / "landing"), LocalStorage(root / "lake")
        self.streams = load_streams()
        self.catalog = Catalog(self.lake, "golden")
        self.marts = load_marts(set(self.streams.streams))
        self.warehouse = Warehouse(root / "wh.duckdb")
        self.alerts: list[dict[str, Any]] = []

    def publish(self, subject: str, message: dict[str, Any]) -> str:
        self.alerts.append(message)
        return f"m-{len(self.alerts)}"

    def run(self, written: list[ObjectWritten]) -> list[str]:
        """Process a batch of new objects; return the ids notified by this batch."""
        new = defaultdict(lambda: defaultdict(set))  # stream -> arrival hour -> keys
        for w in written:
            new[w.stream][parse_key(w.key).arrival_hour].add(w.key)
        days: set[str] = set()
        for stream, hours in sorted(new.items()):  # each stream's hours in one run
            spec = self.streams[stream]
            batches = {h: list(self.landing.list(hour_prefix(stream, h))) for h in sorted(hours)}
            landed = [i for h, infos in batches.items() for i in infos if i.key in hours[h]]
            crawl_objects(spec, self.catalog, self.landing, landed)
            table = self.catalog.get_table(stream)
            reports = clean_hours(spec, table, self.landing, self.lake, batches)
            days |= {d for report in reports.values() for d in report.event_dates}
        columns = {
            name: [
                (c.name, c.duck_type)
                for c in columns_from_table(self.catalog.get_table(name), spec)
            ]
            for name, spec in self.streams.streams.items()
        }
        notified = []
        for day in sorted(days):
            for name in MART_ORDER:
                spec = self.marts[name]
                alerts = [AlertNotices(self.publish, "test")] if spec.alerts else []
                _, written = build_and_write(
                    spec, date.fromisoformat(day), self.lake, self.warehouse, columns, alerts
                )
                notified += written.get("alerts_notified", [])
        return notified

    def mart(self, name: str, where: str = "true") -> list[dict[str, Any]]:
        files = str(self.lake.path(f"marts/{name}")) + "/*/*.parquet"
        return (
            duckdb.sql(f"SELECT * FROM read_parquet('{files}') WHERE {where}")
            .to_arrow_table()
            .to_pylist()
        )


@pytest.fixture(scope="module")
def history(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Pipeline, Simulator, list[ObjectWritten]]:
    """Simulated from 2026-11-20 00:00 to just before the breakdown, processed as one batch."""
    sim = Simulator(
        SimulatorConfig(
            seed=11,
            object_interval_s=INTERVAL.total_seconds(),
            breakdowns=(("R02", BREAKDOWN, 3.0),),
            random_breakdowns=False,
        )
    )
    pipeline = Pipeline(tmp_path_factory.mktemp("golden"))
    written = list(
        sim.write_range(pipeline.landing, START, datetime(2026, 11, 21, 9, 30, tzinfo=UTC))
    )
    pipeline.run(written)
    return pipeline, sim, written


def robot_records(written: list[ObjectWritten]) -> list[dict[str, Any]]:
    return [r for w in written if w.stream == "robot_telemetry" for r in w.records]


def test_cows_milked_once_in_a_day_are_flagged_once_the_day_is_complete(
    history, tmp_path: Path
) -> None:
    pipeline, _, written = history
    milkings = Counter(
        (r["cow_id"], r["ts"][:10])
        for r in robot_records(written)
        if r["event_type"] == "milking_end"
    )
    expected = sorted(cow for (cow, day), n in milkings.items() if day == "2026-11-20" and n == 1)
    assert expected, "the simulated day should have a cow milked only once"
    # robot data has arrived up to 2026-11-21 09:30, not 48 hours (its allowed lateness)
    # past the day's end: the day is not complete, nobody is flagged yet
    rows = pipeline.mart("milking_per_cow_daily", "dt = DATE '2026-11-20'")
    assert rows and {(r["day_complete"], r["milked_fewer_than_twice"]) for r in rows} == {
        (False, None)
    }
    assert sorted(r["cow_id"] for r in rows if r["milkings"] == 1) == expected

    # a copy of the lake where one more object arrived at 2026-11-23 00:05 (day end + 48 h)
    shutil.copytree(pipeline.lake.root.parent, tmp_path / "later")
    later = Pipeline(tmp_path / "later")
    arrival = datetime(2026, 11, 23, 0, 5, tzinfo=UTC)
    heartbeat = {"event_id": "late-hb", "ts": "2026-11-23T00:04:00Z", "robot_id": "R01"}
    key = object_key("robot_telemetry", arrival, object_id="after-lateness")
    later.landing.write(
        key, gzip.compress(json.dumps(heartbeat | {"event_type": "heartbeat"}).encode())
    )
    later.run([ObjectWritten(key, "robot_telemetry", arrival, 0, [heartbeat], [], 0, 0)])
    build_and_write(
        later.marts["milking_per_cow_daily"], date(2026, 11, 20), later.lake, later.warehouse
    )
    complete = later.mart("milking_per_cow_daily", "dt = DATE '2026-11-20'")
    assert {r["day_complete"] for r in complete} == {True}
    flagged = [r for r in complete if r["milked_fewer_than_twice"]]
    assert sorted(r["cow_id"] for r in flagged) == expected
    assert all(r["milkings"] == 1 for r in flagged)


def test_a_burst_of_failed_logins_from_one_address_shows_in_the_security_mart(history) -> None:
    pipeline, _, written = history
    failures = Counter(
        r["sourceIPAddress"]
        for w in written
        if w.stream == "cloudtrail"
        for r in w.records
        if r["eventName"] == "ConsoleLogin"
        and (r.get("responseElements") or {}).get("ConsoleLogin") == "Failure"
        and r["eventTime"].startswith("2026-11-20")
    )
    bursts = {ip: n for ip, n in failures.items() if n >= 5}
    assert bursts, "the simulated day should hold a brute-force burst"
    keyed = {
        hmac.new(hash_key(), ip.encode(), hashlib.sha256).hexdigest(): n for ip, n in bursts.items()
    }
    rows = pipeline.mart(
        "security_events_daily",
        "dt = DATE '2026-11-20' AND kind = 'failed_console_login' AND suspected_brute_force",
    )
    assert {r["source_ip"]: r["events"] for r in rows} == keyed
    # what a kind does not group by is NULL (unknown), never an empty string
    day = pipeline.mart("security_events_daily", "dt = DATE '2026-11-20'")
    assert not [r for r in day if "" in (r["source_ip"], r["principal"])]
    assert {r["principal"] for r in day if r["kind"] == "failed_console_login"} == {None}
    denied = [r for r in day if r["kind"] == "access_denied"]
    assert denied and {r["source_ip"] for r in denied} == {None}


def test_a_breakdown_gives_exactly_one_alert_in_the_next_micro_batch(history) -> None:
    pipeline, sim, written = history
    assert not [a for a in pipeline.alerts if a["kind"] in ("robot_down", "silent_robot")]
    first_critical = None
    per_batch = []
    arrival = datetime(2026, 11, 21, 9, 35, tzinfo=UTC)
    for _ in range(12):  # an hour of micro-batches, every 5 minutes
        batch = [
            w
            for s in ("robot_telemetry", "clickstream", "cloudtrail")
            if (w := sim.write_object(pipeline.landing, s, arrival)) is not None
        ]
        if first_critical is None:
            first_critical = next(
                (
                    r
                    for r in robot_records(batch)
                    if r["robot_id"] == "R02"
                    and (r.get("error") or {}).get("severity") == "critical"
                ),
                None,
            )
        per_batch.append([i for i in pipeline.run(batch) if ":R02:" in i])
        arrival += INTERVAL

    assert first_critical is not None
    started = first_critical["ts"].replace("Z", "")[:19]
    # the micro-batch after the breakdown began (arrival 09:35) carries exactly one alert
    assert per_batch[0] == [f"robot_down:R02:{started}"]
    assert all(ids == [] for ids in per_batch[1:])  # and no batch after it repeats or adds one
    r02 = [a for a in pipeline.alerts if a["robot_id"] == "R02"]
    assert len(r02) == 1 and r02[0]["kind"] == "robot_down"
    # the health mart shows R02 silent in the hour after (no events since the breakdown)
    health = pipeline.mart(
        "robot_health_hourly",
        "robot_id = 'R02' AND hour = TIMESTAMPTZ '2026-11-21 10:00:00+00'",
    )
    assert [(h["events"], h["milkings"]) for h in health] == [(0, 0)]
