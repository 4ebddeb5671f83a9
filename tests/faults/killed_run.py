"""A cleaning or mart run in its own process that kills itself with SIGKILL right after
its N-th write to the lake folder, so the kill lands between two writes of a chosen phase.

`run(mode, kill_after, ...)` starts `python -m tests.faults.killed_run ARGS` from the repo
and returns the finished process: SIGKILLed, or done (kill_after 0) with the writes it
made, in order, as JSON on stdout. With `iceberg` the cleaning run also commits to the
Iceberg tables of the catalog Settings.from_env() configures (LAKE_URI is the lake);
`full_refresh` re-cleans every object of the hour.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

from lake.storage import LocalStorage

REPO = Path(__file__).resolve().parents[2]


class KillingStorage(LocalStorage):
    """A lake folder whose process SIGKILLs itself right after its `kill_after`-th write
    (0: never); `written` lists the keys written so far."""

    def __init__(self, root: str, kill_after: int) -> None:
        super().__init__(root)
        self.kill_after = kill_after
        self.written: list[str] = []

    def _wrote(self, key: str) -> None:
        self.written.append(key)
        if len(self.written) == self.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    def write(self, key: str, data: bytes) -> None:
        super().write(key, data)
        self._wrote(key)

    def write_if(self, key: str, data: bytes, expected: str | None) -> str:
        tag = super().write_if(key, data, expected)
        self._wrote(key)
        return tag


def run(
    mode: str, kill_after: int, env: dict[str, str] | None = None, **args: object
) -> subprocess.CompletedProcess:
    """Run `mode` ("clean" or "mart") in a new process; `env` is added to os.environ."""
    args = {"mode": mode, "kill_after": kill_after, **args}
    return subprocess.run(
        [sys.executable, "-m", "tests.faults.killed_run", json.dumps(args)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _clean(args: dict, lake: KillingStorage) -> None:
    from lake.cleaning.hour import clean_hour
    from lake.firehose import hour_prefix
    from lake.iceberg.catalog import LakeTables
    from lake.settings import Settings
    from lake.streams import load_streams

    spec = load_streams()[args["stream"]]
    settings = Settings.from_env()
    landing = LocalStorage(args["landing"])
    hour = datetime.fromisoformat(args["hour"])
    objects = list(landing.list(hour_prefix(spec.name, hour)))
    tables = LakeTables(settings) if args.get("iceberg") else None
    full_refresh = bool(args.get("full_refresh"))
    clean_hour(
        spec,
        None,
        landing,
        lake,
        hour,
        objects,
        full_refresh=full_refresh,
        settings=settings,
        tables=tables,
    )


def _mart(args: dict, lake: KillingStorage) -> None:
    from lake.marts import parse_mart
    from lake.warehouse import Warehouse
    from tests.mart_days import build_and_write

    spec = parse_mart(Path(args["sql"]), {args["stream"]}, {"record_count"})
    build_and_write(spec, date.fromisoformat(args["day"]), lake, Warehouse(args["warehouse"]))


def main() -> None:
    args = json.loads(sys.argv[1])
    lake = KillingStorage(args["lake"], args["kill_after"])
    {"clean": _clean, "mart": _mart}[args["mode"]](args, lake)
    print(json.dumps(lake.written))


if __name__ == "__main__":
    main()
