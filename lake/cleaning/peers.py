"""What one chunk of a parallel range run (lake.cleaning.parallel) sees of the rest of it.

A chunk's hours are cleaned while the other chunks' are, so the key files those write
must not count for it (which of them it saw would depend on timing); `hidden` names their
objects, whose keys its probes leave out, as a run leaves out the keys of the objects it
reprocesses. `kept` receives the keys the chunk kept, for the serial pass after the
chunks that moves out a later chunk's copy of a key an earlier chunk kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import duckdb
import pyarrow as pa

KEPT_SCHEMA = pa.schema(
    [("dt", pa.date32()), ("hi", pa.uint64()), ("lo", pa.uint64()), ("obj", pa.string())]
)


@dataclass
class Peers:
    """The rest of the run, as a call of clean_hours for some of its hours sees it."""

    hidden: frozenset[str] = frozenset()  # output names of objects whose keys it ignores
    days: frozenset[date] = frozenset()  # event dates probed beyond its hours' windows
    kept: list[pa.Table] = field(default_factory=list)  # its kept keys (KEPT_SCHEMA)

    def kept_keys(self) -> pa.Table:
        return pa.concat_tables(self.kept) if self.kept else KEPT_SCHEMA.empty_table()


def kept_keys(con: duckdb.DuckDBPyConnection, new_keys: str, names: list[str]) -> pa.Table:
    """A run's kept keys (NEW_KEYS: dt, hi, lo, o) with their objects' output names."""
    keys = con.sql(f"SELECT dt, hi, lo, o FROM {new_keys}").to_arrow_table()
    obj = pa.array(names, pa.string()).take(keys["o"])
    columns = [keys["dt"], keys["hi"], keys["lo"], obj]
    return pa.Table.from_arrays(columns, schema=KEPT_SCHEMA)
