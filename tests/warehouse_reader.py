"""A DuckDB reader holding the warehouse open in another process, the way an analyst's
session does (imported by tests, not a conftest)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_READER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print("open", flush=True)
for line in sys.stdin:
    if not line.strip():
        break
    print(con.execute(line).fetchall(), flush=True)
"""


class Reader:
    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process

    def ask(self, sql: str) -> str:
        """The rows of `sql` as the reader prints them."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(sql + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()


@contextmanager
def warehouse_held_open(path: str | Path) -> Iterator[Reader]:
    """A read-only connection to the warehouse at `path`, open until the block ends."""
    process = subprocess.Popen(
        [sys.executable, "-c", _READER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdin is not None
    try:
        assert process.stdout.readline().strip() == "open"
        yield Reader(process)
    finally:
        process.stdin.close()
        process.wait(timeout=30)
