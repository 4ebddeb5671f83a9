"""Start Dagster with the project's instance settings, however it is started.

    python -m orchestration.launch dev [-h 127.0.0.1 -p 3000]    # UI, daemon, sensors
    python -m orchestration.launch asset materialize --select ... --partition ...

A `dagster` command run without DAGSTER_HOME uses a temporary instance with default
settings: no concurrency pools (two runs of one stream would work at once), no run queue
settings, no retention. This launcher sets DAGSTER_HOME (default `<repo>/data/dagster_home`)
and puts the project's `orchestration/dagster.yaml` there, then runs `dagster` with the
given arguments from the repository root (`-w workspace.yaml` for `dev`,
`-m orchestration.definitions` for `asset materialize`, unless given).

A DAGSTER_HOME chosen by the operator keeps its own dagster.yaml (production settings,
e.g. PostgreSQL storage) and is only warned about if it lacks a setting the project relies
on (the pool limit, the queue's dequeue interval, threaded sensors: NEEDED) or keeps its
storage on dagster-postgres's own class, a connection per call (deploy/dagster.yaml names
the project's pooled one, orchestration/postgres_storage.py); one holding a
copy of the project's file (or none) gets the current project file, with RUN_LOG_LEVEL
(default INFO) as the level of the run events printed on the console.

Every command first writes the project's bytecode when PYTHONDONTWRITEBYTECODE is set
(compile_project; `python -m orchestration.launch compile` does only that): every new
process (the CLI, each run) would otherwise compile our modules again. `dev` runs under
a supervisor that stops it gracefully on Ctrl-C or SIGTERM (orchestration/graceful_stop.py):
no new runs, in-flight runs get STOP_GRACE_SECONDS (default 60) to finish, then they are
canceled. Other commands replace this process.
"""

from __future__ import annotations

import compileall
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from lake.settings import DATA_DIR, REPO_ROOT, Settings
from orchestration.graceful_stop import supervise

PROJECT_CONFIG = REPO_ROOT / "orchestration" / "dagster.yaml"
DEFAULT_HOME = DATA_DIR / "dagster_home"
_MARKER = "# The project's instance settings."  # first line of PROJECT_CONFIG
CANCEL_BOUND_S = 30.0  # canceled runs stop at their next step boundary
_TARGETS = ("-w", "--workspace", "-m", "--module-name", "-f", "--python-file")
PACKAGES = ("lake", "assets", "orchestration", "workers")
# named, not imported: the launcher replaces itself with `dagster` and should not pay for
# Dagster's storage modules first
INSTANCE_STORAGE = {"module": "orchestration.instance_storage", "class": "ProjectSqliteStorage"}
# Dagster hands a step's per-partition asset events and a run's planned events to the event
# log as batches of up to this many (store_event_batch) when DAGSTER_EVENT_BATCH_SIZE is set:
# one transaction a shard with the project's SQLite storage, one INSERT with PostgreSQL's,
# instead of a commit an event. An operator's own value is kept.
EVENT_BATCH_SIZE = "100"


def prepare_home(environ: Mapping[str, str]) -> Path:
    """The instance folder with the project's dagster.yaml in it (see the module doc)."""
    home = Path(environ.get("DAGSTER_HOME") or DEFAULT_HOME).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    ours = not config.exists() or config.read_text().startswith(_MARKER)
    if not environ.get("DAGSTER_HOME") or ours:
        config.write_text(project_config(Settings.from_env(environ).run_log_level, home))
    else:
        settings = yaml.safe_load(config.read_text()) or {}
        for missing in missing_settings(settings):
            print(f"warning: {config} sets no {missing} (see {PROJECT_CONFIG})", file=sys.stderr)
        if opens_a_connection_per_call(settings):
            print(f"warning: {config}: {PER_CALL_CONNECTIONS}", file=sys.stderr)
    return home


def project_config(run_log_level: str, home: Path | None = None) -> str:
    """The project's dagster.yaml with the run events' console level set, and with `home`
    the instance's storage: Dagster's SQLite files in `home`, written through
    orchestration/instance_storage.py (its event log keeps its connections open)."""
    settings = yaml.safe_load(PROJECT_CONFIG.read_text())
    settings["python_logs"]["python_log_level"] = run_log_level.upper()
    if home is not None:
        settings["storage"] = {"custom": {**INSTANCE_STORAGE, "config": {"base_dir": str(home)}}}
    return f"{_MARKER} Copied from {PROJECT_CONFIG} by orchestration/launch.py.\n" + yaml.safe_dump(
        settings, sort_keys=False
    )


# What an operator's own dagster.yaml needs from the project's: (path, what goes without it)
NEEDED = (
    (("concurrency", "pools", "default_limit"), "two runs of one stream may work at once"),
    (
        ("run_coordinator", "config", "dequeue_interval_seconds"),
        "queued runs wait up to 5 s more (Dagster's default interval): slower freshness",
    ),
    (("sensors", "use_threads"), "sensors tick one after another: slower freshness"),
)


def missing_settings(settings: Mapping[str, Any]) -> list[str]:
    """The settings of NEEDED that a dagster.yaml's `settings` lack, each with what goes
    without it."""
    missing = []
    for path, consequence in NEEDED:
        value = settings
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            missing.append(f"`{': '.join(path)}`: {consequence}")
    return missing


PER_CALL_CONNECTIONS = (
    "`storage: postgres` opens a new PostgreSQL connection for every storage call (~40 a sensor "
    "tick, ~150 a run): slower freshness; `storage: custom` with "
    "orchestration.postgres_storage's ProjectPostgresStorage keeps them (see deploy/dagster.yaml)"
)


def opens_a_connection_per_call(settings: Mapping[str, Any]) -> bool:
    """Whether a dagster.yaml's `settings` keep Dagster's storage on dagster-postgres's own
    class (NullPool)."""
    storage = settings.get("storage")
    return isinstance(storage, dict) and "postgres" in storage


def compile_project(root: Path = REPO_ROOT) -> None:
    """Write the bytecode of the project's packages, once, when Python would not.

    Every run is a new process importing the code location and its steps' modules (~100
    of ours). With PYTHONDONTWRITEBYTECODE set (containers, CI) no .pyc is ever written,
    so each run compiled them all from source again (bench/README.md, "launch"). A .pyc
    older than its source is ignored by Python, and one that cannot be written (a read-only
    checkout) only leaves that module compiled per run, as before.
    """
    if not sys.dont_write_bytecode:
        return  # Python writes them itself on the first import
    for package in PACKAGES:
        compileall.compile_dir(root / package, quiet=2)


def dagster_command(args: list[str]) -> list[str]:
    """`dagster <args>`, with the code location added when the arguments name none."""
    dagster = str(Path(sys.executable).with_name("dagster"))
    names_target = any(a.split("=", 1)[0] in _TARGETS for a in args)
    if args[:1] == ["dev"] and not names_target:
        args = [*args, "-w", "workspace.yaml"]
    if args[:2] == ["asset", "materialize"] and not names_target:
        args = [*args, "-m", "orchestration.definitions"]
    return [dagster, *args]


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv) or ["dev"]
    compile_project()
    if args == ["compile"]:
        return
    env = {
        "DAGSTER_EVENT_BATCH_SIZE": EVENT_BATCH_SIZE,
        **os.environ,
        "DAGSTER_HOME": str(prepare_home(os.environ)),
    }
    command = dagster_command(args)
    os.chdir(REPO_ROOT)
    if args[:1] == ["dev"]:
        grace_s = Settings.from_env().stop_grace_seconds
        raise SystemExit(supervise(command, env, grace_s, CANCEL_BOUND_S))
    os.execve(command[0], command, env)  # dagster itself gets the signals (Ctrl-C)


if __name__ == "__main__":
    main()
