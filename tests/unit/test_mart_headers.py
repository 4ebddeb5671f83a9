"""Mart headers: not_null, owner and pii, columns checked against the SELECT, code version."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from lake.marts import MARTS_DIR, MartDefinitionError, load_marts

STREAMS = {"robot_telemetry", "clickstream", "cloudtrail"}
SELECT = "SELECT dt, cow_id, count(*) AS n FROM cleaned.robot_telemetry GROUP BY ALL\n"


def _load(folder: Path, header: str, sql: str = SELECT) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "m.sql").write_text(header + sql)
    return load_marts(STREAMS, folder)["m"]


def test_header_settings_are_read(tmp_path: Path) -> None:
    spec = _load(
        tmp_path,
        "-- unique_key: dt, cow_id\n-- not_null: dt, n\n-- owner: team:dairy\n-- pii: true\n",
    )
    assert (spec.unique_key, spec.not_null, spec.owner, spec.pii) == (
        ("dt", "cow_id"),
        ("dt", "n"),
        "team:dairy",
        True,
    )
    assert spec.outputs == ("dt", "cow_id", "n")
    assert spec.code_version == hashlib.sha256((tmp_path / "m.sql").read_bytes()).hexdigest()[:16]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("-- unique_key: dt, cow\n", "unique_key names cow"),
        ("-- not_null: dt, yield_kg\n", "not_null names yield_kg"),
        ("-- sortkey: ts\n", "sortkey names ts"),
        ("-- distkey: robot_id\n", "distkey names robot_id"),
        ("-- owner: dairy team\n", "owner must be"),
        ("-- pii: maybe\n", "pii must be true or false"),
    ],
)
def test_a_header_naming_what_the_select_lacks_names_the_file(
    tmp_path: Path, header: str, message: str
) -> None:
    with pytest.raises(MartDefinitionError, match=rf"m\.sql: {message}"):
        _load(tmp_path, header)


def test_a_select_star_is_not_checked_at_load(tmp_path: Path) -> None:
    spec = _load(tmp_path, "-- unique_key: event_id\n", "SELECT * FROM cleaned.robot_telemetry\n")
    assert spec.unique_key == ("event_id",)


def test_a_changed_file_has_another_code_version(tmp_path: Path) -> None:
    before = _load(tmp_path, "-- unique_key: dt, cow_id\n").code_version
    after = _load(tmp_path, "-- unique_key: dt, cow_id\n", SELECT.replace("count(*)", "count(1)"))
    assert after.code_version != before


def test_shipped_marts_declare_keys_owners_and_pii() -> None:
    marts = load_marts(STREAMS, MARTS_DIR)
    assert all(m.unique_key and m.not_null and m.owner for m in marts.values())
    assert {n for n, m in marts.items() if m.pii} == {
        "security_events_daily",
        "clickstream_sessions_daily",
    }
    assert marts["clickstream_funnel_daily"].streams == {"clickstream"}  # through sessions
