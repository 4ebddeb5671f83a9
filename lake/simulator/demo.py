"""The demo data of `make dev` and `make seed`: one seeding path, done once per lake.

    python -m lake.simulator.demo seed [--hours 3]      # history, once; marker in the lake
    python -m lake.simulator.demo live [--interval 15]  # objects arriving now, until Ctrl-C

Both write with the demo's delivery faults (duplicate, late and malformed records). `seed`
records what it wrote in the lake's `_state/demo_seed.json`; while that marker exists a
second `seed` writes nothing, and the partitions start at the seed's first event day
(orchestration/partitions.py), so they stay the same across restarts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from lake import layout
from lake.settings import Settings
from lake.simulator import cli
from lake.storage import Storage, open_storage

DEMO_SEED = 42
OBJECT_INTERVAL_S = 300
LATE_HOURS = 3.0
FAULTS = {"--duplicate-rate": 0.01, "--late-rate": 0.01, "--malformed-rate": 0.002}


@dataclass(frozen=True)
class DemoSeed:
    """What `seed` wrote: arrivals in [first_arrival, end) into landing_uri."""

    landing_uri: str
    first_arrival: datetime
    end: datetime

    @property
    def first_event_day(self) -> date:
        """The earliest event date in the seed: late records trail their arrival by LATE_HOURS."""
        return (self.first_arrival - timedelta(hours=LATE_HOURS)).date()

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "landing_uri": self.landing_uri,
                "first_arrival": self.first_arrival.isoformat(),
                "end": self.end.isoformat(),
                "first_event_day": self.first_event_day.isoformat(),
            },
            indent=2,
        ).encode()


def read_seed(lake: Storage) -> DemoSeed | None:
    """The seed recorded in the lake, or None when the demo was never seeded there."""
    if not lake.exists(layout.DEMO_SEED_MARKER):
        return None
    fields = json.loads(lake.read(layout.DEMO_SEED_MARKER))
    return DemoSeed(
        landing_uri=fields["landing_uri"],
        first_arrival=datetime.fromisoformat(fields["first_arrival"]),
        end=datetime.fromisoformat(fields["end"]),
    )


def fault_args() -> list[str]:
    """The simulator options for the demo's delivery faults."""
    args = [f"{name}={rate}" for name, rate in FAULTS.items()]
    return [*args, f"--late-hours={LATE_HOURS}"]


def seed(settings: Settings, hours: float, now: datetime) -> tuple[DemoSeed, bool]:
    """Write `hours` of history ending at `now` (cut to the object interval) unless the lake
    already records a seed; returns the seed and whether it was written now."""
    lake = open_storage(settings.lake_uri)
    if (earlier := read_seed(lake)) is not None:
        return earlier, False
    end = datetime.fromtimestamp(now.timestamp() // OBJECT_INTERVAL_S * OBJECT_INTERVAL_S, UTC)
    planned = DemoSeed(settings.landing_uri, end - timedelta(hours=hours), end)
    status = cli.main(
        [
            f"--landing-uri={settings.landing_uri}",
            f"--seed={DEMO_SEED}",
            f"--object-interval={OBJECT_INTERVAL_S}",
            f"--start={planned.first_arrival.isoformat()}",
            f"--end={planned.end.isoformat()}",
            *fault_args(),
        ]
    )
    if status != 0:
        raise SystemExit(status)
    lake.write(layout.DEMO_SEED_MARKER, planned.to_json())
    return planned, True


def live(settings: Settings, interval_s: float, seed_value: int) -> int:
    """One object per stream every `interval_s` with arrival = now, until Ctrl-C."""
    return cli.main(
        [
            f"--landing-uri={settings.landing_uri}",
            f"--seed={seed_value}",
            "--continuous",
            f"--interval={interval_s}",
            *fault_args(),
        ]
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lake.simulator.demo", description=__doc__)
    commands = p.add_subparsers(dest="command", required=True)
    seed_p = commands.add_parser("seed", help="write the demo history once per lake")
    seed_p.add_argument(
        "--hours", type=cli._positive, default=3.0, help="hours of history (default: 3)"
    )
    live_p = commands.add_parser("live", help="keep writing objects that arrive now")
    live_p.add_argument(
        "--interval", type=cli._positive, default=15.0, help="seconds (default: 15)"
    )
    live_p.add_argument(
        "--seed", type=int, default=None, help="random seed (default: the current time)"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    if args.command == "live":
        return live(settings, args.interval, int(time.time()) if args.seed is None else args.seed)
    done, now = seed(settings, args.hours, datetime.now(UTC))
    where = f"{done.first_arrival:%Y-%m-%d %H:%M} .. {done.end:%Y-%m-%d %H:%M} UTC"
    if not now:
        print(
            f"demo data already seeded ({where}; {settings.lake_uri}/{layout.DEMO_SEED_MARKER}); "
            "`make clean` to start over",
            file=sys.stderr,
        )
    else:
        print(f"seeded {where}; partitions start on {done.first_event_day}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
