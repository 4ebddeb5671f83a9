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
e.g. PostgreSQL storage) and is only warned about if it sets no pool limit; one holding a
copy of the project's file (or none) gets the current project file.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

import yaml

from lake.settings import DATA_DIR, REPO_ROOT

PROJECT_CONFIG = REPO_ROOT / "orchestration" / "dagster.yaml"
DEFAULT_HOME = DATA_DIR / "dagster_home"
_MARKER = "# The project's instance settings."  # first line of PROJECT_CONFIG
_TARGETS = ("-w", "--workspace", "-m", "--module-name", "-f", "--python-file")


def prepare_home(environ: Mapping[str, str]) -> Path:
    """The instance folder with the project's dagster.yaml in it (see the module doc)."""
    home = Path(environ.get("DAGSTER_HOME") or DEFAULT_HOME).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    ours = not config.exists() or config.read_text().startswith(_MARKER)
    if not environ.get("DAGSTER_HOME") or ours:
        shutil.copyfile(PROJECT_CONFIG, config)
    elif not has_pool_limit(config):
        print(
            f"warning: {config} sets no `concurrency: pools: default_limit`: two runs of one "
            "stream may work at once (see orchestration/dagster.yaml)",
            file=sys.stderr,
        )
    return home


def has_pool_limit(config: Path) -> bool:
    settings = yaml.safe_load(config.read_text()) or {}
    pools = (settings.get("concurrency") or {}).get("pools") or {}
    return isinstance(pools.get("default_limit"), int)


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
    env = {**os.environ, "DAGSTER_HOME": str(prepare_home(os.environ))}
    command = dagster_command(args)
    os.chdir(REPO_ROOT)
    os.execve(command[0], command, env)  # dagster itself gets the signals (Ctrl-C)


if __name__ == "__main__":
    main()
