"""The Simulator: cuts each stream's events into Firehose objects and writes them.

Every stream has its own generator (a discrete-event process, see scheduler.py) and its own
delivery state: the arrival of its previous object, records held back to arrive late, and
duplicates owed to its next object. Randomness comes from two `random.Random`s per stream,
seeded from the simulator's seed and the stream's name: one for the events themselves and
one for delivery (late, duplicate, malformed, object ids). Turning a stream on or off, or
changing an error rate, therefore leaves the other streams' events alone.
"""

from __future__ import annotations

import heapq
import itertools
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lake.firehose import object_key
from lake.simulator import encoding
from lake.simulator.clickstream import Clickstream
from lake.simulator.cloudtrail import CloudTrail
from lake.simulator.farm import Farm
from lake.simulator.scheduler import EventSource, Record
from lake.simulator.simtime import HOUR_MS, as_utc, from_ms, to_ms
from lake.storage import Storage

STREAMS = ("robot_telemetry", "clickstream", "cloudtrail")
LATE_AFTER_MS = HOUR_MS  # a record counts as late when its event time trails arrival by more


@dataclass(frozen=True)
class SimulatorConfig:
    """What to simulate. Rates are per record, 0..1; datetimes are UTC (naive means UTC).

    `breakdowns` forces robot breakdowns: `(("R02", start, hours), ...)`; they come on top
    of the random ones unless `random_breakdowns` is False.
    """

    seed: int = 42
    streams: tuple[str, ...] = STREAMS
    cows: int = 300
    robots: int = 4
    object_interval_s: float = 300.0
    duplicate_rate: float = 0.0
    late_rate: float = 0.0
    late_hours: float = 3.0
    malformed_rate: float = 0.0
    firmware_update_at: datetime | None = None
    breakdowns: tuple[tuple[str, datetime, float], ...] = ()
    random_breakdowns: bool = True

    def __post_init__(self) -> None:
        streams = tuple(self.streams)
        unknown = [s for s in streams if s not in STREAMS]
        if unknown or not streams:
            raise ValueError(f"streams must be a non-empty subset of {STREAMS}, got {streams}")
        if len(set(streams)) != len(streams):
            raise ValueError(f"streams has duplicates: {streams}")
        object.__setattr__(self, "streams", streams)
        for name in ("duplicate_rate", "late_rate", "malformed_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.cows < 1:
            raise ValueError(f"cows must be at least 1, got {self.cows}")
        if not 1 <= self.robots <= 99:
            raise ValueError(f"robots must be between 1 and 99, got {self.robots}")
        if self.object_interval_s < 1:
            raise ValueError(f"object_interval_s must be at least 1, got {self.object_interval_s}")
        if self.late_hours < 0:
            raise ValueError(f"late_hours must not be negative, got {self.late_hours}")
        if self.firmware_update_at is not None:
            object.__setattr__(self, "firmware_update_at", as_utc(self.firmware_update_at))
        forced = []
        for robot_id, start, hours in self.breakdowns:
            if robot_id not in {f"R{i:02d}" for i in range(1, self.robots + 1)}:
                raise ValueError(
                    f"breakdown robot {robot_id!r} is not one of R01..R{self.robots:02d}"
                )
            if hours <= 0:
                raise ValueError(f"breakdown of {robot_id} must last more than 0 hours")
            forced.append((robot_id, as_utc(start), float(hours)))
        object.__setattr__(self, "breakdowns", tuple(forced))


@dataclass(frozen=True)
class ObjectWritten:
    """One object the simulator wrote, and what is in it."""

    key: str
    stream: str
    arrival: datetime
    size: int
    records: list[dict[str, Any]]  # well-formed records in byte order, duplicates included
    malformed: list[str]  # raw texts of the broken records
    duplicates: int  # records repeating an event id seen earlier in this simulator
    late: int  # records whose event time is more than an hour before arrival


@dataclass(frozen=True)
class _StreamKind:
    framing: str
    id_field: str
    time_field: str
    make_source: Callable[[random.Random, int, SimulatorConfig], EventSource]


def _farm(rng: random.Random, origin_ms: int, cfg: SimulatorConfig) -> EventSource:
    fw = cfg.firmware_update_at
    return Farm(
        rng,
        origin_ms,
        cows=cfg.cows,
        robots=cfg.robots,
        firmware_update_ms=to_ms(fw) if fw is not None else None,
        breakdowns=tuple(
            (robot, to_ms(start), to_ms(start) + int(hours * HOUR_MS))
            for robot, start, hours in cfg.breakdowns
        ),
        random_breakdowns=cfg.random_breakdowns,
    )


KINDS: dict[str, _StreamKind] = {
    "robot_telemetry": _StreamKind(encoding.CONCATENATED_JSON, "event_id", "ts", _farm),
    "clickstream": _StreamKind(
        encoding.NDJSON, "event_id", "ts", lambda rng, origin, cfg: Clickstream(rng, origin)
    ),
    "cloudtrail": _StreamKind(
        encoding.JSON_RECORDS,
        "eventID",
        "eventTime",
        lambda rng, origin, cfg: CloudTrail(rng, origin),
    ),
}


@dataclass
class _StreamState:
    name: str
    kind: _StreamKind
    events_rng: random.Random
    delivery_rng: random.Random
    source: EventSource | None = None
    last_arrival_ms: int | None = None
    # Records held back to arrive late: (deliver after, seq, event time, record).
    held: list[tuple[int, int, int, Record]] = field(default_factory=list)
    owed_duplicates: list[tuple[int, Record, str]] = field(default_factory=list)
    previous_ids: set[str] = field(default_factory=set)


@dataclass
class _Entry:
    order: tuple[float, int, int]
    t_ms: int = 0
    record: Record | None = None
    text: str = ""


class Simulator:
    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self._seq = itertools.count()
        self._streams = {
            name: _StreamState(
                name,
                KINDS[name],
                random.Random(f"{self.config.seed}/{name}/events"),
                random.Random(f"{self.config.seed}/{name}/delivery"),
            )
            for name in self.config.streams
        }

    @property
    def interval_ms(self) -> int:
        return round(self.config.object_interval_s * 1000)

    def write_range(
        self, storage: Storage, start: datetime, end: datetime
    ) -> Iterator[ObjectWritten]:
        """History: one object per stream every object_interval_s, arriving in [start, end).

        Objects arrive at start, start + interval, ...; each holds the events since the
        stream's previous object. Yields only objects that were written (not empty ones).
        """
        start_ms, end_ms = to_ms(start), to_ms(end)
        if end_ms < start_ms:
            raise ValueError(
                f"end {as_utc(end).isoformat()} is before start {as_utc(start).isoformat()}"
            )
        for state in self._streams.values():
            if state.last_arrival_ms is not None and start_ms <= state.last_arrival_ms:
                raise ValueError(
                    f"{state.name}: start {as_utc(start).isoformat()} is not after its previous "
                    f"object's arrival {from_ms(state.last_arrival_ms).isoformat()}"
                )
        return self._write_range(storage, start_ms, end_ms)

    def _write_range(self, storage: Storage, start_ms: int, end_ms: int) -> Iterator[ObjectWritten]:
        for arrival_ms in range(start_ms, end_ms, self.interval_ms):
            arrival = from_ms(arrival_ms)
            for name in self.config.streams:
                written = self.write_object(storage, name, arrival)
                if written is not None:
                    yield written

    def write_object(
        self, storage: Storage, stream: str, arrival: datetime
    ) -> ObjectWritten | None:
        """Write the object of `stream` arriving at `arrival`, or None if it would be empty.

        It holds the events since the stream's previous object (the last object_interval_s
        for its first object), late records now due, and duplicates owed from before.
        """
        state = self._streams.get(stream)
        if state is None:
            raise ValueError(f"stream {stream!r} is not simulated; enabled: {self.config.streams}")
        arrival = as_utc(arrival)
        arrival_ms = to_ms(arrival)
        if state.last_arrival_ms is None:
            window_start = arrival_ms - self.interval_ms
            state.source = self._start_source(state, window_start)
        elif arrival_ms <= state.last_arrival_ms:
            raise ValueError(
                f"{stream}: arrival {arrival.isoformat()} is not after the previous object's "
                f"arrival {from_ms(state.last_arrival_ms).isoformat()}"
            )
        assert state.source is not None
        state.last_arrival_ms = arrival_ms

        entries = self._entries(state, state.source.take_until(arrival_ms), arrival_ms)
        if not entries:
            state.previous_ids = set()
            return None

        kind = state.kind
        records: list[Record] = []
        malformed: list[str] = []
        seen = set(state.previous_ids)
        ids: set[str] = set()
        duplicates = late = 0
        for entry in entries:
            if entry.record is None:
                malformed.append(entry.text)
                continue
            records.append(entry.record)
            event_id = entry.record[kind.id_field]
            if event_id in seen:
                duplicates += 1
            seen.add(event_id)
            ids.add(event_id)
            if arrival_ms - entry.t_ms > LATE_AFTER_MS:
                late += 1
        # Duplicates only ever land in the same or the next object, so the previous
        # object's ids are all the history needed to count them.
        state.previous_ids = ids

        data = encoding.encode_object(kind.framing, [e.text for e in entries])
        object_id = str(uuid.UUID(int=state.delivery_rng.getrandbits(128), version=4))
        key = object_key(stream, arrival, object_id=object_id)
        storage.write(key, data)
        return ObjectWritten(key, stream, arrival, len(data), records, malformed, duplicates, late)

    def _start_source(self, state: _StreamState, window_start_ms: int) -> EventSource:
        """Start the stream's generator late_hours before its first window.

        The lead-in only supplies records that arrive late; records from it that would have
        arrived on time belong to objects before the simulation and are dropped.
        """
        cfg = self.config
        lead_ms = round(cfg.late_hours * HOUR_MS)
        source = state.kind.make_source(state.events_rng, window_start_ms - lead_ms, cfg)
        if lead_ms:
            for t_ms, record in source.take_until(window_start_ms):
                self._maybe_hold(state, t_ms, record)
        else:
            source.take_until(window_start_ms)
        return source

    def _maybe_hold(self, state: _StreamState, t_ms: int, record: Record) -> bool:
        cfg = self.config
        if cfg.late_rate and state.delivery_rng.random() < cfg.late_rate:
            due = t_ms + round(cfg.late_hours * HOUR_MS)
            heapq.heappush(state.held, (due, next(self._seq), t_ms, record))
            return True
        return False

    def _entries(
        self, state: _StreamState, events: list[tuple[int, Record]], arrival_ms: int
    ) -> list[_Entry]:
        """This object's records in byte order, with the delivery faults applied."""
        cfg = self.config
        rng = state.delivery_rng
        kind = state.kind

        on_time = [(t, rec) for t, rec in events if not self._maybe_hold(state, t, rec)]
        arrived_late = []
        while state.held and state.held[0][0] < arrival_ms:
            _, _, t, rec = heapq.heappop(state.held)
            arrived_late.append((t, rec))
        n = len(on_time)

        # Redelivered records go first, like a retried batch.
        entries = [
            _Entry((-1.0, 0, i), t, rec, text)
            for i, (t, rec, text) in enumerate(state.owed_duplicates)
        ]
        state.owed_duplicates = []
        late_slots = [(rng.uniform(0, n), 1) for _ in arrived_late]
        base = [((float(i), 0), item) for i, item in enumerate(on_time)]
        base += list(zip(late_slots, arrived_late, strict=True))
        for (pos, tie), (t, rec) in base:
            order = (pos, tie, next(self._seq))
            if cfg.malformed_rate and rng.random() < cfg.malformed_rate:
                text = encoding.malformed(kind.framing, rec, kind.time_field, rng)
                entries.append(_Entry(order, text=text))
                continue
            text = encoding.dumps(rec)
            entries.append(_Entry(order, t, rec, text))
            if cfg.duplicate_rate and rng.random() < cfg.duplicate_rate:
                if rng.random() < 0.5:
                    later = (rng.uniform(pos, max(pos, n)), 2, next(self._seq))
                    entries.append(_Entry(later, t, rec, text))
                else:
                    state.owed_duplicates.append((t, rec, text))
        entries.sort(key=lambda e: e.order)
        return entries
