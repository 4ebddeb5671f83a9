"""Delimited text (CSV and friends): detected with its delimiter, header and columns.

Cells are typed as Glue reads them (empty -> null, integer, decimal, boolean, text); a
record is the row as a JSON object keyed by column name. Not declarable in streams.yaml
yet: a declared CSV stream would need its delimiter and header settings.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, BinaryIO

from lake.framings.base import Framing, RawRecord, UnreadableObject
from lake.framings.sampling import Batch, NeedMore, SampleText

CSV_DELIMITERS = (",", "|", "\t", ";")
_INT = re.compile(r"[+-]?[0-9]{1,18}")  # longer integers do not fit a bigint
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Csv(Framing):
    name = "csv"
    classification = "csv"
    delimiter: str = ","
    has_header: bool = True
    columns: tuple[str, ...] = ()

    @classmethod
    def detect(cls, sample: SampleText, max_records: int) -> Csv | None:
        """The delimiter giving every sampled row the same number (>1) of fields, the most
        wins; None when there is none. NeedMore when the sample holds no row yet."""
        best: tuple[str, list[list[str]]] | None = None
        for delimiter in CSV_DELIMITERS:
            try:
                rows, _ = _read_rows(sample, delimiter, max_records + 1)
            except csv.Error:  # e.g. a field over the csv module's size limit
                continue
            if not rows:
                raise NeedMore
            width = len(rows[0])
            consistent = width > 1 and all(len(row) == width for row in rows)
            if consistent and (best is None or width > len(best[1][0])):
                best = (delimiter, rows)
        if best is None:
            return None
        delimiter, rows = best
        has_header = _has_header(rows)
        columns = rows[0] if has_header else [f"col{n}" for n in range(1, len(rows[0]) + 1)]
        return cls(delimiter, has_header, tuple(columns))

    def split(self, text: str) -> Iterator[RawRecord]:
        return self._records(csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter))

    def split_file(self, fh: BinaryIO, max_record_bytes: int) -> Iterator[RawRecord]:
        """Rows are read as they come; the csv module bounds a field's length."""
        text = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="strict", newline="")
        try:
            yield from self._records(csv.reader(text, delimiter=self.delimiter))
        except UnicodeDecodeError as exc:
            raise UnreadableObject(f"not valid UTF-8: {exc.reason}") from None
        finally:
            text.detach()  # the caller owns fh

    def _records(self, rows: Iterable[list[str]]) -> Iterator[RawRecord]:
        rows = (row for row in rows if row)
        if self.has_header:
            next(rows, None)
        for position, row in enumerate(rows):
            text = self.delimiter.join(row)
            if len(row) != len(self.columns):
                error = f"csv row of {len(row)} fields, expected {len(self.columns)}"
                yield RawRecord(position, text, error=error)
                continue
            value = self._record(row)
            yield RawRecord(position, json.dumps(value, separators=(",", ":")), value)

    def _record(self, row: list[str]) -> dict[str, Any]:
        return dict(zip(self.columns, map(typed, row), strict=True))

    def sample(self, sample: SampleText, start: int, batch: Batch) -> None:
        rows, all_rows = _read_rows(sample, self.delimiter, batch.limit + 1)
        data = rows[1:] if self.has_header else rows
        if len(data) > batch.limit:
            data, batch.stop = data[: batch.limit], "limit"
        elif not all_rows:
            batch.stop = "limit" if sample.whole else "cut"
        for row in data:
            batch.add(self._record(row))

    def duckdb_reader(self, max_object_size: int) -> str:
        names = ", ".join(_literal(c) for c in self.columns)
        return (
            "SELECT filename, to_json(struct_pack(*COLUMNS(* EXCLUDE (filename))))::VARCHAR "
            f"AS raw FROM read_csv(?, delim={_literal(self.delimiter)}, "
            f"header={str(self.has_header).lower()}, names=[{names}], "
            f"max_line_size={int(max_object_size)}, filename=true)"
        )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _read_rows(sample: SampleText, delimiter: str, limit: int) -> tuple[list[list[str]], bool]:
    reader = csv.reader(io.StringIO(sample.text, newline=""), delimiter=delimiter)
    rows = list(islice((row for row in reader if row), limit + 1))
    if len(rows) > limit:
        return rows[:limit], False
    if not sample.whole and rows:
        rows.pop()  # the sample may end inside its last row
    return rows, sample.whole


def _has_header(rows: list[list[str]]) -> bool:
    """Glue's test: a first row of distinct, non-empty names that are not numbers or
    booleans, above rows that differ from it: a column of numbers/booleans or, when all is
    text, identifier-like names above a column whose values never look like one."""
    first, columns = rows[0], list(zip(*rows[1:], strict=True))
    if not columns or len(set(first)) < len(first):
        return False
    if not all(name.strip() and isinstance(typed(name), str) for name in first):
        return False
    if any(_all_typed(column) for column in columns):
        return True
    names_are_identifiers = all(_IDENTIFIER.fullmatch(name) for name in first)
    return names_are_identifiers and any(_no_identifiers(column) for column in columns)


def _all_typed(column: tuple[str, ...]) -> bool:
    values = [v for v in column if v]
    return bool(values) and not any(isinstance(typed(v), str) for v in values)


def _no_identifiers(column: tuple[str, ...]) -> bool:
    values = [v for v in column if v]
    return bool(values) and not any(_IDENTIFIER.fullmatch(v) for v in values)


def typed(value: str) -> Any:
    """A CSV cell typed as Glue reads it: empty -> None, integer, decimal, boolean, text."""
    if value == "":
        return None
    if _INT.fullmatch(value):
        return int(value)
    if _FLOAT.fullmatch(value):
        return float(value)
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value
