"""lake.layout gives the paths of README's "Where outputs land" table, and no other module
of the pipeline spells a lake path."""

from __future__ import annotations

import ast
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from lake import layout

ROOT = Path(__file__).resolve().parents[2]
DAY = date(2026, 11, 21)
HOUR = datetime(2026, 11, 21, 8, tzinfo=UTC)
NAME = "20261121T08-robot_telemetry-1-2026-11-21-08-00-00-abc-0123456789abcdef.parquet"

# Expected values written by hand from README.md "Where outputs land" and the _state keys
# the ledger, dedup, retype, Redshift, alert and demo modules document.
CASES = [
    (layout.catalog_table("firehose_lake", "robot_telemetry"), "catalog/firehose_lake/robot_telemetry.json"),
    (layout.catalog_version("firehose_lake", "robot_telemetry", 3), "catalog/firehose_lake/robot_telemetry/versions/3.json"),
    (layout.catalog_partition("firehose_lake", "robot_telemetry", ["2026", "11", "21", "08"]), "catalog/firehose_lake/robot_telemetry/partitions/2026-11-21-08.json"),
    (layout.cleaned_file("robot_telemetry", DAY, NAME), f"cleaned/robot_telemetry/dt=2026-11-21/{NAME}"),
    (layout.shared_file("robot_telemetry", DAY, HOUR, "0123456789ab", 3), "cleaned/robot_telemetry/dt=2026-11-21/20261121T08-pass-0123456789ab-p3.parquet"),
    (layout.quarantine_file("robot_telemetry", HOUR, NAME), f"quarantine/robot_telemetry/dt=2026-11-21/{NAME}"),
    (layout.layer_folder("cleaned", "robot_telemetry"), "cleaned/robot_telemetry/"),
    (layout.layer_day_folder("quarantine", "robot_telemetry", DAY), "quarantine/robot_telemetry/dt=2026-11-21/"),
    (layout.mart_file("milking_per_cow_daily", DAY, "00ff00ff00ff00ff"), "marts/milking_per_cow_daily/dt=2026-11-21/milking_per_cow_daily-00ff00ff00ff00ff.parquet"),
    (layout.mart_file("all_time", None, "0a1b"), "marts/all_time/all_time-0a1b.parquet"),
    (layout.mart_partition_folder("milking_per_cow_daily", DAY), "marts/milking_per_cow_daily/dt=2026-11-21/"),
    (layout.mart_partition_folder("all_time", None), "marts/all_time/"),
    (layout.mart_folder("milking_per_cow_daily"), "marts/milking_per_cow_daily/"),
    (layout.mart_day_folder("milking_per_cow_daily", DAY), "marts/milking_per_cow_daily/dt=2026-11-21/"),
    (layout.redshift_ddl("milking_per_cow_daily"), "redshift/milking_per_cow_daily/create_table.sql"),
    (layout.redshift_manifest("milking_per_cow_daily", DAY), "redshift/milking_per_cow_daily/dt=2026-11-21/manifest.json"),
    (layout.redshift_load_script("milking_per_cow_daily", DAY), "redshift/milking_per_cow_daily/dt=2026-11-21/load.sql"),
    (layout.redshift_load_script("all_time", None), "redshift/all_time/load.sql"),
    (layout.ledger_folder("robot_telemetry"), "_state/cleaned/robot_telemetry/"),
    (layout.ledger_hour_prefix("robot_telemetry", HOUR), "_state/cleaned/robot_telemetry/20261121T08-"),
    (layout.ledger_manifest("robot_telemetry", NAME, "00ff00ff00ff00ff"), f"_state/cleaned/robot_telemetry/{NAME}.v00ff00ff00ff00ff.json"),
    (layout.legacy_ledger_manifest("robot_telemetry", "20261121T08-x.parquet"), "_state/cleaned/robot_telemetry/20261121T08-x.parquet.json"),
    (layout.dedup_keys_folder("robot_telemetry", DAY), "_state/keys/robot_telemetry/dt=2026-11-21/"),
    (layout.dedup_keys_file("robot_telemetry", DAY, HOUR), "_state/keys/robot_telemetry/dt=2026-11-21/20261121T08.parquet"),
    (layout.dedup_run_keys_folder("robot_telemetry", DAY, HOUR), "_state/keys/robot_telemetry/dt=2026-11-21/20261121T08/"),
    (layout.dedup_run_keys_file("robot_telemetry", DAY, HOUR, "01234567890123456789-0123456789ab"), "_state/keys/robot_telemetry/dt=2026-11-21/20261121T08/01234567890123456789-0123456789ab.parquet"),
    (layout.retype_marker("robot_telemetry"), "_state/retyped/robot_telemetry.json"),
    (layout.redshift_state("milking_per_cow_daily"), "_state/redshift/milking_per_cow_daily.json"),
    (layout.alert_claim("robot_alerts", "robot-7~3a2026"), "_state/alerts/robot_alerts/robot-7~3a2026.json"),
    (layout.DEMO_SEED_MARKER, "_state/demo_seed.json"),
]  # fmt: skip


@pytest.mark.parametrize(("built", "expected"), CASES)
def test_layout_gives_the_documented_path(built: str, expected: str) -> None:
    assert built == expected


def test_cleaned_file_day_reads_the_event_date_of_cleaned_files_only() -> None:
    assert layout.cleaned_file_day(f"cleaned/robot_telemetry/dt=2026-11-21/{NAME}") == DAY
    assert layout.cleaned_file_day(f"quarantine/robot_telemetry/dt=2026-11-21/{NAME}") is None
    assert layout.is_cleaned_file(f"cleaned/s/dt=2026-11-21/{NAME}")
    assert not layout.is_cleaned_file(f"quarantine/s/dt=2026-11-21/{NAME}")


def test_a_shared_file_is_never_an_output_name_and_is_told_apart() -> None:
    shared = layout.shared_file("s", DAY, HOUR, "0123456789ab", 0)
    assert layout.is_shared_file(shared)
    assert not layout.is_shared_file(layout.cleaned_file("s", DAY, NAME))
    assert not layout.is_shared_file(shared.replace("cleaned/", "quarantine/", 1))
    for token, n in (("0123456789AB", 0), ("../x", 0), ("0123456789ab", -1)):
        with pytest.raises(ValueError):
            layout.shared_file("s", DAY, HOUR, token, n)


def test_a_mart_file_name_takes_only_a_hex_build_token() -> None:
    for token in ("", "0000*", "../x", "ABC", "0" * 33):
        with pytest.raises(ValueError, match="not a build token"):
            layout.mart_file("m", DAY, token)


def test_layer_folder_refuses_a_layer_cleaning_does_not_write() -> None:
    with pytest.raises(ValueError, match="not a cleaning layer"):
        layout.layer_folder("marts", "robot_telemetry")


def test_readme_table_lists_every_top_level_folder_layout_builds() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Where outputs land", 1)[1].split("\n\n", 2)[2]
    for row in ("`catalog/<database>/<table>.json`", "`cleaned/<stream>/dt=YYYY-MM-DD/*.parquet`",
                "`quarantine/<stream>/dt=YYYY-MM-DD/*.parquet`", "`marts/<mart>/dt=YYYY-MM-DD/<mart>-<build token>.parquet`",
                "`redshift/<mart>/create_table.sql`", "`_state/...`"):  # fmt: skip
        assert row in table


TOP_FOLDERS = ("cleaned/", "quarantine/", "marts/", "catalog/", "redshift/", "_state/")
# Dagster run tag names shaped like asset keys, not lake paths
NOT_PATHS = {"marts/trigger"}
EXCLUDED = {Path("lake/layout.py"), Path("lake/firehose.py")}


def _docstrings(tree: ast.Module) -> set[int]:
    owners = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, owners) and node.body and isinstance(node.body[0], ast.Expr)
    }


def lake_path_literals(source: str) -> list[tuple[int, str]]:
    """(line, text) of each string literal (f-string parts too, docstrings aside) that
    starts with a lake top-level folder."""
    tree = ast.parse(source)
    docs = _docstrings(tree)
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docs
        and node.value.startswith(TOP_FOLDERS)
        and node.value not in NOT_PATHS
    ]


def test_the_scan_finds_plain_and_f_string_paths() -> None:
    source = (
        'KEY = "_state/x.json"\ndef f(s):\n    """cleaned/<s>: docs"""\n    return f"marts/{s}/"\n'
    )
    assert lake_path_literals(source) == [(1, "_state/x.json"), (4, "marts/")]


def test_no_module_but_layout_spells_a_lake_path() -> None:
    found = []
    for folder in ("lake", "assets", "orchestration"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if relative in EXCLUDED or relative.parts[:2] == ("lake", "simulator"):
                continue
            found += [(str(relative), *hit) for hit in lake_path_literals(path.read_text())]
    assert found == []


def test_shared_parts_read_a_manifests_ranges_and_refuse_anything_else() -> None:
    from lake.ledger import SharedPart, shared_parts

    shared = layout.shared_file("s", DAY, HOUR, "0123456789ab", 0)
    part = SharedPart(shared, 3, 4)
    assert shared_parts({"shared": [part.as_manifest()]}) == [part]
    assert shared_parts({"files": []}) == [] == shared_parts(None)
    for bad in (
        [shared],
        [{"file": layout.cleaned_file("s", DAY, NAME), "first": 0, "rows": 1}],
        [{"file": shared, "first": -1, "rows": 1}],
        [{"file": shared, "first": 0, "rows": True}],
        [{"file": shared, "first": "0", "rows": 1}],
    ):
        with pytest.raises(ValueError):
            shared_parts({"shared": bad})
