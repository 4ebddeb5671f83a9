"""A pass's in-memory files are found by name, not by scanning every stored name."""

from __future__ import annotations

import duckdb
import pytest

from lake.cleaning.landed_files import registered


class _NoScan(dict):
    """A store that fails when iterated: a lookup by name must not walk it."""

    def __iter__(self):  # type: ignore[override]
        raise AssertionError("the store was scanned")

    def keys(self):  # type: ignore[override]
        raise AssertionError("the store was scanned")

    def items(self):  # type: ignore[override]
        raise AssertionError("the store was scanned")


def test_duckdb_reads_many_landed_files_without_scanning_the_store() -> None:
    con = duckdb.connect()
    with registered(con) as files:
        files.store = _NoScan(files.store)
        names = [files.add(i, f'{{"n": {i}}}\n{{"n": {i + 1000}}}'.encode()) for i in range(300)]
        rows = con.execute(
            "SELECT parse_filename(filename, true)::INT AS i, sum(json_extract(json, '$.n')::INT) "
            "FROM read_json_objects(?, filename = true) GROUP BY 1 ORDER BY 1",
            [names],
        ).fetchall()
    assert rows == [(i, 2 * i + 1000) for i in range(300)]


def test_info_of_a_name_not_stored_still_raises() -> None:
    con = duckdb.connect()
    with registered(con) as files:
        name = files.add(1, b"{}")
        assert files.info(name)["size"] == 2
        with pytest.raises(FileNotFoundError):
            files.info(name + "0")


def test_each_pass_has_its_own_files() -> None:
    """Two passes at once (two runs in one process) do not share a store: one ending
    leaves the other's files readable."""
    first, second = duckdb.connect(), duckdb.connect()
    with registered(first) as a:
        name = a.add(0, b'{"n": 1}')
        with registered(second) as b:
            assert b is not a
            b.add(0, b'{"n": 2}')
        rows = first.execute("SELECT json FROM read_json_objects(?)", [[name]]).fetchall()
    assert rows == [('{"n": 1}',)]


def test_duckdb_reading_a_landed_file_leaves_its_bytes_unique() -> None:
    """The bytes a pass holds are read where they are: DuckDB's size and open calls
    make no copy of the object (fsspec's `size` unshared the buffer: a copy a call)."""
    con = duckdb.connect()
    data = b'{"n": 1}' * 1000
    with registered(con) as files:
        name = files.add(0, data)
        empty = files.add(1, b"")
        rows = con.execute(
            "SELECT count(*) FROM read_json_objects(?, format = 'auto')", [[name, empty]]
        ).fetchall()
        assert rows == [(1000,)]
        assert files.info(name)["size"] == len(data) and files.info(empty)["size"] == 0
        with files.open(name) as handle:
            assert handle.read() is data
