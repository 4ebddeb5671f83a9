"""`python -m lake.simulator` / `lake-simulate`: write simulated Firehose objects.

History (`--hours N`, or `--start`/`--end`) writes one object per stream per
`--object-interval`; `--continuous` writes one per stream every `--interval` seconds with
arrival = now. Progress goes to stderr, the summary line to stdout.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from lake.settings import Settings
from lake.simulator.core import STREAMS, ObjectWritten, Simulator, SimulatorConfig
from lake.simulator.simtime import as_utc, from_ms, to_ms
from lake.storage import Storage, open_storage

PROGRESS_EVERY_S = 2.0
DEFAULT_HOURS = 1.0
DEFAULT_INTERVAL_S = 10.0


@dataclass
class _Totals:
    objects: int = 0
    records: int = 0
    malformed: int = 0
    duplicates: int = 0
    late: int = 0
    bytes: int = 0
    interrupted: bool = False

    def add(self, written: ObjectWritten | None) -> None:
        if written is None:
            return
        self.objects += 1
        self.records += len(written.records) + len(written.malformed)
        self.malformed += len(written.malformed)
        self.duplicates += written.duplicates
        self.late += written.late
        self.bytes += written.size

    def brief(self) -> str:
        return f"{self.objects:,} objects, {self.records:,} records, {self.bytes / 1e6:.1f} MB"

    def summary(self, uri: str) -> str:
        return (
            f"wrote {self.objects:,} objects, {self.records:,} records "
            f"({self.malformed:,} malformed, {self.duplicates:,} duplicates, {self.late:,} late) "
            f"to {uri}"
        )


def _utc(text: str) -> datetime:
    try:
        return as_utc(datetime.fromisoformat(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO-8601 time (e.g. 2026-11-21T08:00:00Z)"
        ) from None


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _rate(text: str) -> float:
    value = _number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a rate between 0 and 1")
    return value


def _positive(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be greater than 0")
    return value


def _non_negative(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must not be negative")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _streams(text: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in names if s not in STREAMS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown stream(s) {', '.join(unknown) or '(none)'}; choose from {','.join(STREAMS)}"
        )
    return tuple(dict.fromkeys(names))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lake-simulate",
        description="Write simulated Kinesis Firehose objects (robot_telemetry, clickstream, "
        "cloudtrail) to a landing location.",
    )
    p.add_argument(
        "--landing-uri",
        help="file:///path or s3://bucket/prefix (default: LANDING_URI or ./data/landing)",
    )
    p.add_argument(
        "--streams",
        type=_streams,
        default=STREAMS,
        help=f"comma-separated streams (default: {','.join(STREAMS)})",
    )
    p.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")

    when = p.add_argument_group("history (default: the last hour)")
    when.add_argument("--start", type=_utc, help="first arrival, ISO-8601 UTC")
    when.add_argument("--end", type=_utc, help="arrivals before this, ISO-8601 UTC")
    when.add_argument(
        "--hours",
        type=_positive,
        help="hours of history; ends now (cut to the object interval) "
        "unless --start or --end is given",
    )
    when.add_argument(
        "--object-interval",
        type=_positive,
        default=300.0,
        metavar="SECONDS",
        help="seconds between a stream's objects (default: 300, Firehose's buffer interval)",
    )

    live = p.add_argument_group("continuous")
    live.add_argument(
        "--continuous",
        action="store_true",
        help="write objects with arrival = now until --duration or Ctrl-C",
    )
    live.add_argument(
        "--interval",
        type=_positive,
        metavar="SECONDS",
        help=f"seconds between objects (default: {DEFAULT_INTERVAL_S:g})",
    )
    live.add_argument(
        "--duration",
        type=_positive,
        metavar="SECONDS",
        help="stop after this many seconds (default: run until Ctrl-C)",
    )

    farm = p.add_argument_group("farm")
    farm.add_argument("--cows", type=_count, default=300, help="default: 300")
    farm.add_argument("--robots", type=_count, default=4, help="default: 4 (at most 99)")
    farm.add_argument(
        "--firmware-update-at",
        type=_utc,
        metavar="TIME",
        help="robots run firmware 5.0.0 from this time (ISO-8601 UTC)",
    )

    faults = p.add_argument_group("delivery faults (rates per record, 0..1)")
    faults.add_argument("--duplicate-rate", type=_rate, default=0.0, metavar="RATE")
    faults.add_argument("--late-rate", type=_rate, default=0.0, metavar="RATE")
    faults.add_argument(
        "--late-hours",
        type=_non_negative,
        default=3.0,
        metavar="HOURS",
        help="how late a late record arrives (default: 3)",
    )
    faults.add_argument("--malformed-rate", type=_rate, default=0.0, metavar="RATE")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator; returns the exit status (2 for bad arguments)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        storage, sim = _setup(parser, args)
        if args.continuous:
            totals = _run_continuous(sim, storage, args)
        else:
            start, end = _history_range(parser, args)
            totals = _run_history(sim, storage, start, end)
    except SystemExit as exc:  # argparse's errors and --help
        return exc.code if isinstance(exc.code, int) else 2
    print(totals.summary(storage.uri))
    # Ctrl-C is how a continuous run normally ends; it cuts a history run short.
    return 130 if totals.interrupted and not args.continuous else 0


def _setup(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[Storage, Simulator]:
    history_args = [
        o
        for o, v in (("--start", args.start), ("--end", args.end), ("--hours", args.hours))
        if v is not None
    ]
    if args.continuous and history_args:
        parser.error(f"--continuous cannot be combined with {', '.join(history_args)}")
    if not args.continuous and (args.interval is not None or args.duration is not None):
        parser.error("--interval and --duration need --continuous")
    try:
        config = SimulatorConfig(
            seed=args.seed,
            streams=args.streams,
            cows=args.cows,
            robots=args.robots,
            object_interval_s=args.object_interval,
            duplicate_rate=args.duplicate_rate,
            late_rate=args.late_rate,
            late_hours=args.late_hours,
            malformed_rate=args.malformed_rate,
            firmware_update_at=args.firmware_update_at,
        )
    except ValueError as exc:
        parser.error(str(exc))
    uri = args.landing_uri or Settings.from_env().landing_uri
    try:
        storage = open_storage(uri)
    except ValueError as exc:
        parser.error(f"--landing-uri: {exc}")
    return storage, Simulator(config)


def _history_range(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[datetime, datetime]:
    start, end, hours = args.start, args.end, args.hours
    if start is not None and end is not None and hours is not None:
        parser.error("give two of --start, --end and --hours, not all three")
    if start is None and end is None:
        step = round(args.object_interval * 1000)
        end = from_ms(to_ms(datetime.now(UTC)) // step * step)
    if hours is None and (start is None or end is None):
        if start is not None:
            parser.error("--start needs --end or --hours")
        hours = DEFAULT_HOURS
    if start is None:
        start = end - timedelta(hours=hours)
    if end is None:
        end = start + timedelta(hours=hours)
    if end <= start:
        parser.error(f"--end {end.isoformat()} must be after --start {start.isoformat()}")
    return start, end


def _run_history(sim: Simulator, storage: Storage, start: datetime, end: datetime) -> _Totals:
    interval = sim.config.object_interval_s
    slots = math.ceil((end - start).total_seconds() / interval)
    span = (end - start).total_seconds()
    _say(
        f"simulating {','.join(sim.config.streams)} from {start:%Y-%m-%dT%H:%M:%SZ} "
        f"to {end:%Y-%m-%dT%H:%M:%SZ}: up to {slots * len(sim.config.streams):,} objects "
        f"into {storage.uri}"
    )
    totals = _Totals()
    last_print = time.monotonic()
    next_decile = 1
    try:
        for written in sim.write_range(storage, start, end):
            totals.add(written)
            done = min(1.0, ((written.arrival - start).total_seconds() + interval) / span)
            now = time.monotonic()
            if done * 10 >= next_decile or now - last_print >= PROGRESS_EVERY_S:
                _say(f"  {done:4.0%}  {totals.brief()}")
                last_print = now
                next_decile = math.floor(done * 10) + 1
    except KeyboardInterrupt:
        _say("interrupted")
        totals.interrupted = True
    return totals


def _run_continuous(sim: Simulator, storage: Storage, args: argparse.Namespace) -> _Totals:
    interval = args.interval or DEFAULT_INTERVAL_S
    began = time.monotonic()
    deadline = began + args.duration if args.duration else math.inf
    _say(
        f"writing {','.join(sim.config.streams)} every {interval:g}s into {storage.uri}"
        + (f" for {args.duration:g}s" if args.duration else " until Ctrl-C")
    )
    totals = _Totals()
    last: datetime | None = None
    tick = began
    try:
        while True:
            arrival = datetime.now(UTC)
            if last is not None and arrival <= last:  # the wall clock stepped back
                arrival = last + timedelta(milliseconds=1)
            last = arrival
            tick_totals = _Totals()
            for stream in sim.config.streams:
                written = sim.write_object(storage, stream, arrival)
                tick_totals.add(written)
                totals.add(written)
            _say(f"  {arrival:%H:%M:%S}  +{tick_totals.records:,} records; {totals.brief()}")
            tick += interval
            time.sleep(max(0.0, min(tick, deadline) - time.monotonic()))
            if time.monotonic() >= deadline:
                break
    except KeyboardInterrupt:
        _say("interrupted")
        totals.interrupted = True
    return totals


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
