"""Column lineage of the shipped marts; every expectation below was read off the SQL by hand."""

from __future__ import annotations

import pytest

from lake.mart_lineage import column_lineage
from lake.marts import load_marts

STREAMS = {"robot_telemetry", "clickstream", "cloudtrail"}
# cleaned columns as the build's views show them (more than the marts use: unused ones
# must not appear), with the Hive `dt` folder and the lineage columns
LINEAGE = ["_source_key", "_position", "_arrival_hour", "_ingested_at", "dt"]
ROBOT = ["event_id", "ts", "robot_id", "cow_id", "event_type", "milking_yield_kg"]
ROBOT += ["milking_duration_s", "error_code", "error_severity", "firmware_version"]
CLOUDTRAIL = ["eventid", "eventtime", "eventname", "eventsource", "sourceipaddress"]
CLOUDTRAIL += ["useridentity_arn", "useridentity_type", "responseelements_consolelogin"]
CLOUDTRAIL += ["errorcode", "awsregion"]
SESSIONS = ["dt", "session_id", "user_id", "started_at", "viewed_product", "added_to_cart"]
SESSIONS += ["purchased", "reached_checkout", "revenue"]
INPUTS = {
    "cleaned": {"robot_telemetry": ROBOT + LINEAGE, "cloudtrail": CLOUDTRAIL + LINEAGE},
    "marts": {"clickstream_sessions_daily": SESSIONS},
}


@pytest.fixture(scope="module")
def marts():
    return load_marts(STREAMS)


def robot(*columns: str) -> list[tuple[str, str, str]]:
    return sorted({("cleaned", "robot_telemetry", c) for c in columns})


def cloudtrail(*columns: str) -> list[tuple[str, str, str]]:
    return sorted({("cleaned", "cloudtrail", c) for c in columns})


def test_milking_per_cow_daily(marts) -> None:
    got = column_lineage(marts["milking_per_cow_daily"], INPUTS)
    assert got == {
        "dt": robot("dt"),
        "cow_id": robot("cow_id"),
        "robot_id": robot("robot_id", "ts"),  # arg_max(robot_id, ts)
        "milkings": [],  # count(*)
        "yield_kg": robot("milking_yield_kg"),
        "avg_yield_kg": robot("milking_yield_kg"),
        "avg_duration_s": robot("milking_duration_s"),
        "first_milking_at": robot("ts"),
        "last_milking_at": robot("ts"),
        "milked_fewer_than_twice": [],  # count(*) and the day's completeness
        "day_complete": [],
    }


def test_security_events_daily(marts) -> None:
    kind = ("eventname", "responseelements_consolelogin", "useridentity_type", "errorcode")
    got = column_lineage(marts["security_events_daily"], INPUTS)
    assert got["dt"] == cloudtrail("dt")
    assert got["kind"] == cloudtrail(*kind)
    # CASE WHEN kind <> ... THEN <value> END: the value and what decides the kind
    assert got["source_ip"] == cloudtrail("sourceipaddress", *kind)
    assert got["principal"] == cloudtrail("useridentity_arn", "useridentity_type", *kind)
    assert got["event_name"] == cloudtrail("eventname")
    assert got["events"] == []
    assert got["first_seen_at"] == got["last_seen_at"] == cloudtrail("eventtime")
    assert got["suspected_brute_force"] == cloudtrail(*kind)


def test_a_mart_over_a_mart_points_at_the_mart_columns(marts) -> None:
    got = column_lineage(marts["clickstream_funnel_daily"], INPUTS)

    def sessions(*columns: str) -> list[tuple[str, str, str]]:
        return sorted({("marts", "clickstream_sessions_daily", c) for c in columns})

    assert got["dt"] == sessions("dt")
    assert got["sessions"] == []
    assert got["cart_rate"] == sessions("added_to_cart", "viewed_product")
    assert got["purchase_rate"] == sessions("purchased", "added_to_cart")
    assert got["revenue"] == sessions("revenue")


def test_columns_through_ctes_and_union_all_reach_the_cleaned_columns(marts) -> None:
    got = column_lineage(marts["robot_anomalies"], INPUTS)
    # robot_id || ... and coalesce(cow_id, robot_id) over four UNION ALL branches
    assert got["anomaly_id"] == robot("cow_id", "robot_id", "ts")
    assert got["cow_id"] == robot("cow_id")
    assert got["kind"] == [] and got["severity"] == []  # literals
