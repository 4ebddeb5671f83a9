"""The names and locations of the lake's tables (lake.iceberg.catalog) come without
pyiceberg: a process imports pyiceberg when it opens a catalog, not before."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def modules_after(script: str) -> set[str]:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            f"{script}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_table_names_and_locations_do_not_import_pyiceberg():
    modules = modules_after(
        "from lake.iceberg.catalog import LakeTables\n"
        "from lake.settings import Settings\n"
        "t = LakeTables(Settings(lake_uri='s3://bucket/lake'))\n"
        "assert t.table_id('cleaned', 'robot_telemetry') == 'cleaned.robot_telemetry'\n"
        "assert t.key_of(t.location('cleaned', 'x') + '/a.parquet') == 'cleaned/x/a.parquet'"
    )
    assert "lake.iceberg.catalog" in modules
    assert sorted(m for m in modules if m.split(".")[0] in ("pyiceberg", "boto3")) == []


def test_opening_the_catalog_imports_it(tmp_path):
    modules = modules_after(
        "from lake.iceberg.catalog import LakeTables\n"
        "from lake.settings import Settings\n"
        f"lake = '{tmp_path.as_uri()}/lake'\n"
        f"t = LakeTables(Settings(lake_uri=lake, iceberg_catalog_uri='sqlite:///{tmp_path}/i.db'))\n"
        "assert t.load('cleaned', 'robot_telemetry') is None"
    )
    assert {"pyiceberg.catalog.sql", "pyiceberg.exceptions"} <= modules
