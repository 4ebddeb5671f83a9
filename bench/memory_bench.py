"""Memory benchmark: peak RSS of cleaning an hour whose objects expand a lot.

    .venv/bin/python bench/memory_bench.py generate --dir /tmp/mb-huge --kind huge
    .venv/bin/python bench/memory_bench.py generate --dir /tmp/mb-bomb --kind bomb
    .venv/bin/python bench/memory_bench.py generate --dir /tmp/mb-1g --kind one-gb
    /usr/bin/time -v .venv/bin/python bench/memory_bench.py run --dir /tmp/mb-huge

Kinds of hour (robot_telemetry, concatenated JSON, gzip, one arrival hour):
- `huge`: 3 valid objects of ~250 MB of JSON each (under the default 256 MiB cap), each
  with a few 4 MB records among ~800k ordinary ones, and 5 small objects;
- `bomb`: a 3 GB gzip bomb (3 GB of spaces inside one record: ~3 MB stored) among 5 small
  valid objects;
- `one-gb`: one valid object of ~1 GB of JSON (run it with `--max-object-expanded-bytes`
  above 1 GB to clean it rather than quarantine it).
`run` cleans the hour with lake.cleaning.hour.clean_hour (no catalog: types from a sample)
and prints wall time, counts and the process's peak RSS (ru_maxrss).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import resource
import shutil
import time
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lake.cleaning.hour import clean_hour
from lake.firehose import hour_prefix, object_key
from lake.storage import LocalStorage
from lake.streams import load_streams

SPEC = load_streams()["robot_telemetry"]
HOUR = datetime(2026, 11, 21, 8, tzinfo=UTC)
MB = 1 << 20


def _record(rng: random.Random, pad: int = 0) -> dict:
    record = {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "ts": f"2026-11-21T08:{rng.randrange(60):02d}:{rng.randrange(60):02d}.000Z",
        "robot_id": f"R{rng.randrange(40):02d}",
        "event_type": rng.choice(["milking_start", "milking_end", "gate", "feeder"]),
        "cow_id": f"C{rng.randrange(3000):05d}",
        "yield_kg": round(rng.uniform(5, 20), 2),
        "temperature_c": round(rng.uniform(36, 40), 2),
        "status": {"ok": rng.random() > 0.01, "code": rng.randrange(100)},
        "tags": [rng.choice("abcdef") for _ in range(3)],
    }
    if pad:
        record["notes"] = "n" * pad
    return record


def _write_valid(landing: LocalStorage, n: int, target_bytes: int, rng: random.Random) -> int:
    """One object of about target_bytes of JSON, a 4 MB record every ~64 MB; returns its
    record count. Written through gzip in pieces, never held whole."""
    key = object_key(SPEC.name, HOUR + timedelta(seconds=n), object_id=f"{n:05d}")
    path = landing.path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = records = 0
    with gzip.open(path, "wb", compresslevel=6) as out:
        while written < target_bytes:
            pad = 4 * MB if records % 230_000 == 0 else 0  # ~64 MB of records apart
            batch = "".join(
                json.dumps(_record(rng, pad if i == 0 else 0), separators=(",", ":"))
                for i in range(1000)
            ).encode()
            out.write(batch)
            written += len(batch)
            records += 1000
    return records


def _write_bomb(landing: LocalStorage, n: int, expanded: int) -> None:
    key = object_key(SPEC.name, HOUR + timedelta(seconds=n), object_id=f"bomb{n:05d}")
    head = json.dumps(_record(random.Random(0)))[:-1] + ',"pad":"'
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [z.compress(head.encode())]
    block = b" " * (16 * MB)
    parts += [z.compress(block) for _ in range(expanded // len(block))]
    landing.write(key, b"".join([*parts, z.compress(b'"}'), z.flush()]))


def generate(root: Path, kind: str) -> None:
    shutil.rmtree(root, ignore_errors=True)
    landing = LocalStorage(root / "landing")
    rng = random.Random(7)
    records = 0
    for n in range(5):
        records += _write_valid(landing, n, 2 * MB, rng)
    if kind == "huge":
        for n in range(5, 8):
            records += _write_valid(landing, n, 250 * MB, rng)
    elif kind == "bomb":
        _write_bomb(landing, 5, 3 * 1024 * MB)
        records += 1
    else:
        records += _write_valid(landing, 5, 1024 * MB, rng)
    stored = sum(o.size for o in landing.list(f"{SPEC.name}/"))
    print(f"generated {kind}: {records:,} records, {stored / 1e6:.1f} MB stored")


def run(root: Path, max_expanded: int | None) -> None:
    spec = SPEC
    if max_expanded:
        spec = SPEC.with_limits(max_object_expanded_bytes=max_expanded)
    landing = LocalStorage(root / "landing")
    shutil.rmtree(root / "lake", ignore_errors=True)
    lake = LocalStorage(root / "lake")
    objects = list(landing.list(hour_prefix(SPEC.name, HOUR)))
    start = time.perf_counter()
    report = clean_hour(spec, None, landing, lake, HOUR, objects)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{len(objects)} objects, {report.records_in:,} records in {wall:.1f} s: "
        f"cleaned {report.records_cleaned:,}, quarantined {report.records_quarantined:,}, "
        f"unbalanced {len(report.unbalanced_objects)}; peak RSS {peak:.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("generate", "run"))
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--kind", choices=("huge", "bomb", "one-gb"), default="huge")
    parser.add_argument("--max-object-expanded-bytes", type=int, default=None)
    args = parser.parse_args()
    if args.mode == "generate":
        generate(args.dir, args.kind)
    else:
        run(args.dir, args.max_object_expanded_bytes)


if __name__ == "__main__":
    main()
