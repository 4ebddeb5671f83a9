"""A range run's hours cleaned in parallel (CLEAN_WORKERS=N), with the serial run's outcome.

The hours are split into N contiguous chunks of about equal stored bytes (split_hours);
each chunk is cleaned by lake.cleaning.hour.clean_hours on its own DuckDB session and
thread, writing its files and dedup keys but committing nothing: its share of the run's
RunCommit is held back by hour (HeldCommit). A chunk does not see the keys the other
chunks write (lake.cleaning.peers), so it drops what the serial run would drop but for
the copies of keys an earlier chunk kept. One serial pass then settles those (settle):
for chunk k = 1..N-1 in order, an hour of chunk k holding a key that chunks < k kept is
cleaned again, seeing the earlier chunks' keys and its own chunk's earlier hours' (and not
the later objects'), which drops exactly what the serial run dropped; its files and keys
replace the first ones. Such hours are rare (a record redelivered across a chunk's
boundary). Then the run commits once, as the serial run does: a chunk that fails leaves
nothing committed (its files and keys are a killed run's, which the next run replaces).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lake.cleaning.commit import RunCommit
from lake.cleaning.hour import CleaningSession
from lake.cleaning.peers import Peers
from lake.cleaning.report import HourReport
from lake.ledger import output_name
from lake.settings import Settings
from lake.storage import ObjectInfo, Storage

Batches = dict[datetime, list[ObjectInfo]]


@dataclass
class HeldCommit(RunCommit):
    """A chunk's share of the run's commit, held by hour (the settle pass may replace an
    hour's); its files are named with the run's token."""

    held: dict[datetime, tuple[Any, ...]] = field(default_factory=dict)

    def add_hour(self, hour: datetime, *parts: Any) -> None:  # type: ignore[override]
        self.held[hour] = parts

    def files_of(self, hour: datetime) -> list[str]:
        return list(self.held[hour][1]) if hour in self.held else []


@dataclass
class Chunk:
    """A chunk's hours, what cleaning them did and the keys it kept (Peers.kept_keys)."""

    batches: Batches
    reports: dict[datetime, HourReport]
    commit: HeldCommit
    keys: pa.Table


Clean = Callable[..., dict[datetime, HourReport]]
# cleans a chunk's batches, its peers' objects hidden, into a HeldCommit; gives back its
# reports and kept keys: on a thread (clean_chunk) or on a Pipes worker
ChunkRunner = Callable[
    [Batches, frozenset[str], HeldCommit], tuple[dict[datetime, HourReport], pa.Table]
]


def clean_chunk(
    clean: Clean, settings: Settings, batches: Batches, hidden: frozenset[str], held: HeldCommit
) -> tuple[dict[datetime, HourReport], pa.Table]:
    """A chunk cleaned here (a thread of the run's, or a worker's process)."""
    peers = Peers(hidden=hidden)
    return _clean(clean, settings, batches, held, peers), peers.kept_keys()


def split_hours(batches: Batches, n: int) -> list[Batches]:
    """The hours in (at most) n contiguous chunks of about equal stored bytes: an hour
    goes to the chunk its bytes' midpoint falls in."""
    hours = sorted(batches)
    sizes = [sum(o.size for o in batches[h]) + 1 for h in hours]  # +1: empty hours count too
    total, before = sum(sizes), 0
    chunks: dict[int, Batches] = {}
    for hour, size in zip(hours, sizes, strict=True):
        k = min(n - 1, n * (2 * before + size) // (2 * total))
        chunks.setdefault(k, {})[hour] = batches[hour]
        before += size
    return [chunks[k] for k in sorted(chunks)]


def clean_in_parallel(
    batches: Batches,
    workers: int,
    run_commit: RunCommit,
    lake: Storage,
    settings: Settings,
    clean: Clean,
    run_chunk: ChunkRunner | None = None,
) -> dict[datetime, HourReport]:
    """Clean `batches` in `workers` chunks, settle them and hand their hours to
    `run_commit` (which the caller commits). `clean` is clean_hours with the run's own
    arguments bound, all but the batches, run_commit, session and peers; `run_chunk` runs
    a chunk (default: clean_chunk on a thread). Returns every hour's report."""
    run_chunk = run_chunk or partial(clean_chunk, clean, settings)
    chunks_of = split_hours(batches, workers)
    names = [_names(c) for c in chunks_of]
    everyone = frozenset().union(*names)

    def chunk(k: int) -> Chunk:
        held = _held(run_commit)
        reports, keys = run_chunk(chunks_of[k], everyone - names[k], held)
        return Chunk(chunks_of[k], reports, held, keys)

    with ThreadPoolExecutor(len(chunks_of), thread_name_prefix="clean-chunk") as pool:
        futures = [pool.submit(chunk, k) for k in range(len(chunks_of))]
        wait(futures)
    chunks = [f.result() for f in futures]  # the first failure raises: nothing committed
    settle(chunks, run_commit, lake, settings, clean)
    reports: dict[datetime, HourReport] = {}
    for c in chunks:
        reports |= c.reports
        for hour, parts in sorted(c.commit.held.items()):
            run_commit.add_hour(hour, *parts)
        run_commit.event_column = c.commit.event_column or run_commit.event_column
    return reports


def settle(
    chunks: list[Chunk],
    run_commit: RunCommit,
    lake: Storage,
    settings: Settings,
    clean: Clean,
) -> list[datetime]:
    """Clean again, chunk after chunk, each hour holding a key an earlier chunk kept, as
    the serial run cleaned it: seeing the keys of the objects before it (on every event
    date the run kept keys for: the serial run's own keys count on any date), not those
    after it. Its files, keys and report replace the first ones. Returns those hours."""
    run_days = frozenset().union(*(_key_days(c.keys) for c in chunks))
    order = [(k, hour) for k, c in enumerate(chunks) for hour in sorted(c.batches)]
    earlier = chunks[0].keys.select(["hi", "lo"])
    settled = []
    for k, c in enumerate(chunks[1:], start=1):
        for hour in _hours_holding(c, earlier):
            later = _names({h: chunks[j].batches[h] for j, h in order if (j, h) > (k, hour)})
            held, peers = _held(run_commit), Peers(frozenset(later), run_days)
            report = _clean(clean, settings, {hour: c.batches[hour]}, held, peers)
            _drop_files(lake, set(c.commit.files_of(hour)) - set(held.files_of(hour)))
            c.reports[hour], c.commit.held[hour] = report[hour], held.held[hour]
            settled.append(hour)
        earlier = pa.concat_tables([earlier, c.keys.select(["hi", "lo"])])
    return settled


def _clean(
    clean: Clean,
    settings: Settings,
    batches: Batches,
    held: HeldCommit,
    peers: Peers,
) -> dict[datetime, HourReport]:
    with CleaningSession(settings) as session:  # a connection of the chunk's own
        return clean(batches=batches, run_commit=held, session=session, peers=peers)


def _held(run_commit: RunCommit) -> HeldCommit:
    return HeldCommit(run_commit.tables, run_commit.spec, run_commit.lake, token=run_commit.token)


def _names(batches: Batches) -> set[str]:
    return {output_name(hour, o.key) for hour, objs in batches.items() for o in objs}


def _key_days(keys: pa.Table) -> set[date]:
    return set(pc.unique(keys["dt"]).to_pylist()) - {None}


def _hours_holding(c: Chunk, earlier: pa.Table) -> list[datetime]:
    """The hours of chunk `c` whose objects kept a key among `earlier` (hi, lo)."""
    if c.keys.num_rows == 0 or earlier.num_rows == 0:
        return []
    found = c.keys.join(earlier, ["hi", "lo"], join_type="left semi")
    objs = set(pc.unique(found["obj"]).to_pylist())
    return sorted({h for h, infos in c.batches.items() if _names({h: infos}) & objs})


def _drop_files(lake: Storage, files: set[str]) -> None:
    """Files the first cleaning of an hour wrote that its settled cleaning did not."""
    for key in sorted(files):
        lake.discard(key)
