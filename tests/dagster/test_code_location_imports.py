"""Loading the code location (what every run process, the UI's code server and the CLI do
first) does not import what only some runs use: pyiceberg and the modules that open
tables, clean hours or build marts are imported by the runs that do that."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# each of these imports pyiceberg at its top: the runs that need them import them
RUN_ONLY = (
    "pyiceberg",
    "lake.cleaning.hour",
    "lake.cleaning.commit",
    "lake.retype",
    "lake.warehouse",
    "lake.reconcile",
    "lake.mart_build",
    "lake.mart_sinks",
    "lake.iceberg.compaction",
    "lake.iceberg.expiry",
)


def imported_by(statement: str, env: dict[str, str] | None = None) -> set[str]:
    """The modules a fresh interpreter holds after `statement` (run from the repo root)."""
    script = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_loading_definitions_leaves_run_only_modules_unimported():
    modules = imported_by("import orchestration.definitions as d; d.defs.get_repository_def()")
    assert "orchestration.definitions" in modules and "assets.cleaned" in modules
    assert sorted(m for m in RUN_ONLY if m in modules) == []


def test_a_declared_start_date_leaves_the_simulator_unimported():
    """The demo seed decides the first partition only when PIPELINE_START_DATE is unset
    (orchestration.partitions), so a deployment's and the CLI's processes skip it."""
    modules = imported_by(
        "import orchestration.definitions as d; d.defs.get_repository_def()",
        {"PIPELINE_START_DATE": "2026-10-01"},
    )
    assert "orchestration.definitions" in modules
    assert sorted(m for m in modules if m.startswith("lake.simulator")) == []


def test_the_launcher_replaces_itself_with_dagster_before_importing_it(tmp_path):
    """`python -m orchestration.launch asset materialize ...` (the user's CLI path) prepares
    the instance folder and execs `dagster`, which imports Dagster itself: the launcher
    importing it first cost every CLI run ~1.7 s CPU (bench/README.md, "clistart")."""
    modules = imported_by(
        "import os\n"
        "from orchestration import launch\n"
        "execs = []\n"
        "os.execve = lambda path, args, env: execs.append(args)\n"
        "launch.main(['asset', 'materialize', '--select', 'landing/x', '--partition', 'p'])\n"
        "assert execs and execs[0][1:3] == ['asset', 'materialize'], execs",
        {"DAGSTER_HOME": str(tmp_path / "home")},
    )
    assert "orchestration.launch" in modules
    assert sorted(m for m in modules if m.split(".")[0] in ("dagster", "sqlalchemy")) == []
    assert (tmp_path / "home" / "dagster.yaml").exists()
