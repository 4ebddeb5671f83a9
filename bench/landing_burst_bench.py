"""The landing scan under a burst: N objects inside the 2-minute look-back, on a local
folder (the scan's logic is the same on S3; only each list call costs more there).

    .venv/bin/python bench/landing_burst_bench.py --objects 25000 --max-new 2000

Prints the ticks until every object is requested, objects requested (must equal N, each
once), the largest cursor (bytes of JSON) and the most keys one tick read, and the
slowest tick's wall time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lake.firehose import object_key  # noqa: E402
from lake.landing_scan import ScanCursor, scan_new_objects  # noqa: E402
from lake.storage import LocalStorage  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=25_000)
    parser.add_argument("--max-new", type=int, default=2000)
    args = parser.parse_args()
    storage = LocalStorage(tempfile.mkdtemp(prefix="burst-"))
    t0 = datetime(2026, 11, 21, 7, 50, tzinfo=UTC)
    spacing = timedelta(seconds=100) / args.objects  # all inside 100 s < the look-back
    for i in range(args.objects):
        storage.write(object_key("s", t0 + i * spacing, object_id=f"{i:07d}"), b"{}")
    cursor, seen, ticks, biggest, most_listed, slowest = ScanCursor(), set(), 0, 0, 0, 0.0
    while True:
        start = time.perf_counter()
        result = scan_new_objects(storage, "s", cursor, max_new=args.max_new)
        text = result.cursor.to_json()
        slowest = max(slowest, time.perf_counter() - start)
        ticks += 1
        biggest, most_listed = max(biggest, len(text)), max(most_listed, result.listed)
        new = [info.key for info, _ in result.new]
        assert not seen & set(new), "an object was requested twice"
        seen |= set(new)
        cursor = ScanCursor.from_json(text)
        if not new:
            break
    print(
        f"objects {args.objects}: requested {len(seen)} in {ticks - 1} ticks; "
        f"largest cursor {biggest} B; most keys read in a tick {most_listed}; "
        f"slowest tick {slowest:.2f} s"
    )


if __name__ == "__main__":
    main()
