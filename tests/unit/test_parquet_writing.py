"""Parquet helpers: zstd bytes, and one file per run of equal group values."""

from __future__ import annotations

import io
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake.parquet_writing import GroupsNotConsecutive, parquet_bytes, write_groups


def test_each_group_is_written_once_with_its_rows_in_order() -> None:
    groups = [3, 3, 3, 0, 0, 7, 2, 2, 2, 2]
    table = pa.table({"g": groups, "v": list(range(len(groups)))})
    written: dict[tuple[object, ...], list[int]] = {}
    lock = threading.Lock()

    def write(key: tuple[object, ...], rows: pa.Table) -> int:
        assert rows.column_names == ["v"]  # the group column is left out
        with lock:
            written[key] = rows.column("v").to_pylist()
        return rows.num_rows

    # batches of 4 rows, so groups straddle batch boundaries
    results = write_groups(table.to_reader(max_chunksize=4), ["g"], write)

    assert list(results) == [(3,), (0,), (7,), (2,)]
    assert results == {(3,): 3, (0,): 2, (7,): 1, (2,): 4}
    assert written == {(3,): [0, 1, 2], (0,): [3, 4], (7,): [5], (2,): [6, 7, 8, 9]}


def test_groups_over_two_columns() -> None:
    table = pa.table({"a": [1, 1, 1, 2], "b": ["x", "x", "y", "y"], "v": [10, 11, 12, 13]})
    results = write_groups(table.to_reader(), ["a", "b"], lambda k, rows: rows["v"].to_pylist())
    assert results == {(1, "x"): [10, 11], (1, "y"): [12], (2, "y"): [13]}


def test_a_group_that_comes_back_is_refused() -> None:
    table = pa.table({"g": [1, 1, 2, 1], "v": [0, 1, 2, 3]})
    with pytest.raises(GroupsNotConsecutive, match=r"\(1,\)"):
        write_groups(table.to_reader(), ["g"], lambda k, rows: None)


def test_an_error_in_a_writer_reaches_the_caller() -> None:
    table = pa.table({"g": [1, 2], "v": [0, 1]})

    def write(key: tuple[object, ...], rows: pa.Table) -> None:
        if key == (2,):
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_groups(table.to_reader(), ["g"], write)


def test_parquet_bytes_are_zstd_and_skip_the_dictionary_where_asked() -> None:
    table = pa.table({"id": [f"id-{n}" for n in range(1000)], "kind": ["a", "b"] * 500})
    data = parquet_bytes(table, no_dictionary={"id"})

    meta = pq.ParquetFile(io.BytesIO(data)).metadata.row_group(0)
    by_name = {meta.column(i).path_in_schema: meta.column(i) for i in range(meta.num_columns)}
    assert {c.compression for c in by_name.values()} == {"ZSTD"}
    assert by_name["id"].dictionary_page_offset is None
    assert by_name["kind"].dictionary_page_offset is not None
    assert pq.read_table(io.BytesIO(data)).equals(table)
