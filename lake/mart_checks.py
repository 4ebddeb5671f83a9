"""Checks of a mart's rows against its header: the unique key holds, not-null columns
hold no NULL.

Keys are compared NULL-safe: two rows whose key columns are equal or both NULL are the
same key (GROUP BY puts NULLs in one group), as the mart's consumers see them. A check
runs per built partition and adds up across the days of a backfill.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import duckdb
import pyarrow as pa

from lake.sql_text import quote_identifier

SAMPLES = 5


@dataclass
class CheckOutcome:
    failures: int = 0  # duplicated keys, or NULL values
    rows_checked: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)  # a few failing keys
    by_column: dict[str, int] = field(default_factory=dict)  # NULLs per column

    @property
    def passed(self) -> bool:
        return self.failures == 0

    def add(self, other: CheckOutcome) -> None:
        self.failures += other.failures
        self.rows_checked += other.rows_checked
        self.samples = (self.samples + other.samples)[:SAMPLES]
        for column, n in other.by_column.items():
            self.by_column[column] = self.by_column.get(column, 0) + n


def duplicate_keys(rows: pa.Table, key: tuple[str, ...]) -> CheckOutcome:
    """Key values held by more than one row; samples carry the key and its row count."""
    names = ", ".join(quote_identifier(k) for k in key)
    with duckdb.connect() as con:
        con.register("mart", rows)
        found = (
            f"SELECT {names}, count(*) AS _rows FROM mart GROUP BY {names} "
            f"HAVING count(*) > 1 ORDER BY _rows DESC, {names}"
        )
        [(failures,)] = con.execute(f"SELECT count(*) FROM ({found})").fetchall()
        samples = con.sql(f"{found} LIMIT {SAMPLES}").to_arrow_table().to_pylist()
    return CheckOutcome(failures, rows.num_rows, [_plain(s) for s in samples])


def null_values(rows: pa.Table, columns: tuple[str, ...], key: tuple[str, ...]) -> CheckOutcome:
    """NULLs in `columns`; samples are the keys of rows holding one."""
    by_column = {c: rows.column(c).null_count for c in columns}
    outcome = CheckOutcome(sum(by_column.values()), rows.num_rows, by_column=by_column)
    if outcome.failures:
        any_null = " OR ".join(f"{quote_identifier(c)} IS NULL" for c in columns)
        shown = ", ".join(quote_identifier(c) for c in key) if key else "*"
        with duckdb.connect() as con:
            con.register("mart", rows)
            found = con.sql(f"SELECT {shown} FROM mart WHERE {any_null} LIMIT {SAMPLES}")
            outcome.samples = [_plain(s) for s in found.to_arrow_table().to_pylist()]
    return outcome


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready values (dates and times as ISO text)."""
    return {k: v.isoformat() if isinstance(v, date | datetime) else v for k, v in row.items()}
