"""A parallel run's chunk handed back through the lake (lake.cleaning.handoff): a chunk
really cleaned (tests/unit/test_parallel_hours.py's lake), dumped into the lake (local
folders, or moto's S3 over HTTP) and loaded back gives the same reports, kept keys and held
ledger writes, as JSON and Parquet with no pickle; a truncated or altered handoff is
refused, and the run that meets one fails with nothing committed."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake import layout
from lake.catalog_store import Catalog
from lake.cleaning.handoff import DOC, KEYS, HandoffError, drop_handoff, dump_chunk, load_chunk
from lake.cleaning.parallel import HeldCommit, clean_chunk, split_hours
from lake.cleaning.report import HourReport
from lake.cleaning.run import RunOptions, clean_run, cleaner
from lake.firehose import hour_prefix
from lake.iceberg.catalog import LakeTables
from lake.settings import Settings
from lake.storage import S3Storage, Storage
from tests.unit.test_parallel_hours import (
    DATABASE,
    HOURS,
    KEY,
    SPEC,
    Log,
    local,
    make_lake,
)

TOKEN = "0123456789ab"
Batches = dict[datetime, list[Any]]


def _chunk(settings: Settings) -> tuple[Batches, dict[datetime, HourReport], pa.Table, HeldCommit]:
    """The second of two chunks (11:00-13:00) cleaned as a worker cleans it."""
    landing, lake = local(settings.landing_uri), local(settings.lake_uri)
    batches = {h: list(landing.list(hour_prefix(SPEC.name, h))) for h in HOURS}
    chunk = split_hours(batches, 2)[1]
    tables = LakeTables(settings)
    table = Catalog(lake, DATABASE).get_table(SPEC.name)
    clean = cleaner(settings, SPEC, table, (landing, lake), KEY, RunOptions(), tables)
    held = HeldCommit(tables, SPEC, lake, token=TOKEN)
    reports, keys = clean_chunk(clean, settings, chunk, frozenset(), held)
    return chunk, reports, keys, held


def _no_pickle(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle used")

    for name in ("dumps", "loads", "dump", "load", "Pickler", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)


def _writes(parts: tuple[Any, ...]) -> tuple[Any, ...]:
    """An hour's held parts, each ledger write as its function and arguments after the lake."""
    *plain, writes = parts
    return (*plain, [(w.func, w.args[1:], w.keywords) for w in writes])


@pytest.fixture(params=["local", "s3"])
def handoff_lake(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return local((tmp_path / "lake").as_uri())
    return S3Storage(request.getfixturevalue("s3_bucket"), "lake")


def test_a_chunk_comes_back_through_the_lake_as_it_left(
    tmp_path: Path, handoff_lake: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_lake(tmp_path / "worker", 2)
    batches, reports, keys, held = _chunk(settings)
    assert keys.num_rows and any(parts[-1] for parts in held.held.values())
    shared = [w.args[4].shared for p in held.held.values() for w in p[-1] if w.args[4].shared]
    assert len(shared) == 2  # 11:00's two small objects share a file, and it travels
    folder = layout.chunk_handoff_folder(SPEC.name, TOKEN, min(batches))
    assert folder == f"_state/chunks/{SPEC.name}/{TOKEN}/20261121T11/"

    _no_pickle(monkeypatch)
    size = dump_chunk(handoff_lake, folder, reports, keys, held)
    stored = {i.key: i.size for i in handoff_lake.list(folder)}
    assert stored.keys() == {folder + DOC, folder + KEYS} and sum(stored.values()) == size
    doc = json.loads(handoff_lake.read(folder + DOC))  # plain JSON and Parquet
    assert doc["token"] == TOKEN and doc["event_column"] == held.event_column
    on_lake = pq.read_table(pa.BufferReader(handoff_lake.read(folder + KEYS)))
    assert on_lake.equals(keys)

    step = HeldCommit(held.tables, SPEC, handoff_lake, token=TOKEN)
    back, back_keys = load_chunk(handoff_lake, folder, step, batches)
    assert back == reports
    assert back_keys.equals(keys)
    assert step.event_column == held.event_column
    assert {h: _writes(p) for h, p in step.held.items()} == {
        h: _writes(p) for h, p in held.held.items()
    }
    assert all(w.args[0] is handoff_lake for p in step.held.values() for w in p[-1])

    drop_handoff(handoff_lake, folder)
    assert not list(handoff_lake.list(f"_state/chunks/{SPEC.name}/"))


def _edit_doc(change: Callable[[dict], None]) -> Callable[[bytes], bytes]:
    def edit(data: bytes) -> bytes:
        doc = json.loads(data)
        change(doc)
        return json.dumps(doc).encode()

    return edit


def _first_write(doc: dict) -> dict:
    return next(w for h in doc["held"].values() for w in h["ledger_writes"])


def _first_shared(doc: dict) -> dict:
    writes = (w for h in doc["held"].values() for w in h["ledger_writes"])
    return next(w for w in writes if w["counts"]["shared"])["counts"]["shared"][0]


OWN_FILE = f"cleaned/{SPEC.name}/dt=2026-11-21/20261121T11-d-0123456789abcdef-{TOKEN}.parquet"


def _another_streams(part: dict) -> None:
    part["file"] = part["file"].replace(f"cleaned/{SPEC.name}/", "cleaned/other_stream/")


TAMPERED = {
    "truncated document": (DOC, lambda data: data[: len(data) // 2], "JSONDecodeError"),
    "truncated keys": (KEYS, lambda data: data[:-100], "truncated or altered"),
    "another run": (DOC, _edit_doc(lambda d: d.update(token="ba9876543210")), "another"),
    "a file outside the stream": (
        DOC,
        _edit_doc(lambda d: _first_write(d)["counts"]["files"].append("catalog/lake_db/x.json")),
        "a file outside",
    ),
    "a shared file of another stream": (
        DOC,
        _edit_doc(lambda d: _another_streams(_first_shared(d))),
        "a file outside",
    ),
    "a shared file that is an object's own": (
        DOC,
        _edit_doc(lambda d: _first_shared(d).update(file=OWN_FILE)),
        "not a shared file",
    ),
    "a shared range that is not one": (
        DOC,
        _edit_doc(lambda d: _first_shared(d).update(first=-1)),
        "not a row range",
    ),
    "a path out of the lake": (
        DOC,
        _edit_doc(lambda d: _first_write(d)["earlier"].append("../../etc/passwd")),
        "UnsafeKeyError",
    ),
    "an object not in the chunk": (
        DOC,
        _edit_doc(lambda d: _first_write(d)["object"].__setitem__(1, 1)),
        "not in the chunk",
    ),
    "a count that is not one": (
        DOC,
        _edit_doc(lambda d: next(iter(d["reports"].values())).update(records_in="12")),
        "expected a count",
    ),
    "an hour not the chunk's": (
        DOC,
        _edit_doc(lambda d: d["reports"].update({"2026-11-21T08:00:00+00:00": {}})),
        "not the chunk's",
    ),
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_a_truncated_or_altered_handoff_is_refused(tmp_path: Path, case: str) -> None:
    settings = make_lake(tmp_path, 2)
    batches, reports, keys, held = _chunk(settings)
    lake = local(settings.lake_uri)
    folder = layout.chunk_handoff_folder(SPEC.name, TOKEN, min(batches))
    dump_chunk(lake, folder, reports, keys, held)
    name, change, message = TAMPERED[case]
    lake.write(folder + name, change(lake.read(folder + name)))

    step = HeldCommit(held.tables, SPEC, lake, token=TOKEN)
    with pytest.raises(HandoffError, match=f"{folder}: chunk refused: .*{message}"):
        load_chunk(lake, folder, step, batches)
    assert step.held == {}


def test_a_worker_that_handed_nothing_back_is_refused(tmp_path: Path) -> None:
    settings = make_lake(tmp_path, 2)
    lake = local(settings.lake_uri)
    step = HeldCommit(LakeTables(settings), SPEC, lake, token=TOKEN)
    with pytest.raises(HandoffError, match="chunk.json missing: the worker handed nothing"):
        load_chunk(lake, "_state/chunks/x/", step, {})


def test_a_run_meeting_an_altered_handoff_fails_with_nothing_committed(tmp_path: Path) -> None:
    """Each chunk cleaned, dumped and loaded as a Pipes worker's is, the second altered
    between the two: the run raises and leaves no ledger and no Iceberg snapshot."""
    settings = make_lake(tmp_path, 2)
    landing, lake = local(settings.landing_uri), local(settings.lake_uri)
    tables = LakeTables(settings)

    def runners(table: dict | None):
        clean = cleaner(settings, SPEC, table, (landing, lake), KEY, RunOptions(), tables)

        def run_chunk(batches: Batches, hidden: frozenset[str], held: HeldCommit):
            worker = HeldCommit(tables, SPEC, lake, token=held.token)
            reports, keys = clean_chunk(clean, settings, batches, hidden, worker)
            folder = layout.chunk_handoff_folder(SPEC.name, held.token, min(batches))
            dump_chunk(lake, folder, reports, keys, worker)
            if min(batches) != HOURS[0]:
                outside = "catalog/lake_db/x.json"
                edit = _edit_doc(lambda d: _first_write(d)["counts"]["files"].append(outside))
                lake.write(folder + DOC, edit(lake.read(folder + DOC)))
            return load_chunk(lake, folder, held, batches)

        return run_chunk

    storages = (landing, lake)
    with pytest.raises(HandoffError, match="chunk refused"):
        clean_run(settings, SPEC, DATABASE, storages, KEY, HOURS, RunOptions(), Log(), runners)
    assert not list(lake.list("_state/cleaned/"))  # no ledger: every object is still new
    assert all(
        (t := tables.load(layer, SPEC.name)) is None or t.current_snapshot() is None
        for layer in ("cleaned", "quarantine")
    )
