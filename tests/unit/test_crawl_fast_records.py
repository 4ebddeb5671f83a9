"""The crawl's record merge infers each distinct record shape once (RecordMerger): its
results must equal a plain record-by-record merge on mixed, conflicting, JSON-field and
over-limit records, across several objects as sample_objects merges them."""

from __future__ import annotations

import random
from typing import Any

import pytest

import lake.crawl_sample as crawl_sample
from lake.crawl_sample import JsonTracking, RecordMerger, merge_json_aware
from lake.hive_types import MergeReport, Struct, encode_type, infer, value_signature
from lake.json_fields import ShapeCounter
from lake.streams import RecordLimits

LIMITS = RecordLimits(max_columns=25, max_nesting_depth=6, max_key_bytes=40)
WIDE_META = {f"m{c}": c for c in range(30)}


def reference_merge(
    schema: Struct,
    records: list[Any],
    report: MergeReport,
    limits: RecordLimits | None,
    tracking: JsonTracking,
) -> int:
    """The crawl's merge record by record: every step for every record, no signatures."""
    steps, merged = RecordMerger(report, limits, tracking), 0
    for value in records:
        inferred = steps.record_type(value) if isinstance(value, dict) else None
        if inferred is not None:
            merged += 1
            schema.fields = merge_json_aware(schema, inferred, report, tracking).fields
    return merged


def _record(rng: random.Random, i: int) -> Any:
    """A record drawn from a few common shapes and some rare, conflicting or broken ones."""
    base: dict[str, Any] = {
        "id": f"e-{i}",
        "ts": f"2026-11-21T08:{i % 60:02d}:00Z",
        "n": rng.choice([1, 2, 2**40]),
        "x": rng.choice([1.5, None]),
        "meta": {"a": 1, "day": "2026-11-21"},
        "payload": {"anything": [i]},  # declared JSON
    }
    kind = 9 if i == 0 else rng.randrange(20)
    if kind == 0:
        base["meta"] = "flat text"  # struct versus scalar under a key: a JSON field
    elif kind == 1:
        base["arr"] = [{"q": 1}, 5]  # conflict inside an array: reported, record by record
    elif kind == 2:
        base["arr"] = [[1], [{"q": "2026-11-21"}]]
    elif kind == 3:
        base["deep"] = [[[[[[1]]]]]]  # past max_nesting_depth
    elif kind == 4:
        base["k" * 50] = 1  # key past max_key_bytes
    elif kind == 5:
        base["wide"] = {f"c{c}": c for c in range(30)}  # past max_columns
    elif kind == 6:
        base["params"] = {f"p{rng.randrange(8)}": {"v": 1}}  # many shapes: a candidate
    elif kind == 7:
        base["ts"] = rng.choice(["2026-11-21", 17, None])
    elif kind == 8:
        base["meta"] = {"a": "text", "b": {"c": None}}
    elif kind == 9:
        base["meta"] = WIDE_META  # past max_columns until `meta` is a JSON field
    elif kind == 10:
        return rng.choice([[1, 2], "text", 5, None])  # not an object: not merged
    return base


@pytest.mark.parametrize("on_conflict", [True, False])
@pytest.mark.parametrize("limits", [LIMITS, None])
def test_merge_once_per_shape_equals_record_by_record(
    on_conflict: bool, limits: RecordLimits | None
) -> None:
    rng = random.Random(15)
    objects = [[_record(rng, i) for i in range(300)] for _ in range(6)]

    def tracking() -> JsonTracking:
        return JsonTracking(frozenset({("payload",)}), on_conflict, ShapeCounter(3))

    old_report, old_tracking, old_schema, old_counts = MergeReport(), tracking(), Struct(), []
    for records in objects:
        one = Struct()
        old_counts.append(reference_merge(one, records, old_report, limits, old_tracking))
        old_schema = merge_json_aware(old_schema, one, old_report, old_tracking)

    new_report, new_tracking, new_schema, new_counts = MergeReport(), tracking(), Struct(), []
    merger = RecordMerger(new_report, limits, new_tracking)
    for records in objects:
        one = Struct()
        new_counts.append(merger.merge(one, records))
        new_schema = merge_json_aware(new_schema, one, new_report, new_tracking)

    assert encode_type(new_schema) == encode_type(old_schema)  # types and field order
    assert new_report.conflicts == old_report.conflicts  # repeats and order included
    assert new_tracking.found == old_tracking.found
    assert new_tracking.shapes.shapes == old_tracking.shapes.shapes
    assert new_tracking.shapes.candidates() == old_tracking.shapes.candidates()
    assert new_counts == old_counts
    # the cases under test did occur
    assert sum(old_counts) < sum(isinstance(r, dict) for o in objects for r in o) or not limits
    assert len(old_report.conflicts) > 6
    assert old_tracking.shapes.candidates() == [("params",)]
    assert (("meta",) in old_tracking.found) == on_conflict


def test_each_distinct_shape_is_inferred_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def counting_infer(value: Any) -> Any:
        calls.append(value)
        return infer(value)

    monkeypatch.setattr(crawl_sample, "infer", counting_infer)
    shapes = [{"a": 1, "b": "x"}, {"a": 2**40, "b": "x"}, {"a": 1, "b": "2026-11-21"}]
    records = [{**shapes[i % 3], "id": f"e{i}"} for i in range(1000)]
    schema = Struct()
    merged = RecordMerger(MergeReport(), LIMITS).merge(schema, records)
    assert merged == 1000
    assert len(calls) == 3
    assert encode_type(schema) == {"struct": [["a", "bigint"], ["b", "string"], ["id", "string"]]}


def test_signature_tells_apart_what_infer_tells_apart() -> None:
    assert value_signature({"a": 1}, 5) == value_signature({"a": 7}, 5)
    assert value_signature({"a": 1}, 5) != value_signature({"a": 2**40}, 5)
    assert value_signature({"a": "2026-11-21"}, 5) != value_signature({"a": "text"}, 5)
    assert value_signature({"a": 1, "b": 1}, 5) != value_signature({"b": 1, "a": 1}, 5)
    assert value_signature({"a": [1]}, 5) != value_signature({"a": [1, None]}, 5)
    assert value_signature({"a": True}, 5) != value_signature({"a": 1}, 5)
    assert value_signature({"a": {"b": []}}, 3) is not None
    assert value_signature({"a": {"b": []}}, 2) is None  # deeper than asked: no signature
    assert value_signature({"a": {1, 2}}, 5) is None  # not a JSON type


def test_record_nested_past_the_signature_depth_is_still_left_out() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(100_000):
        node["a"] = {}
        node = node["a"]
    schema = Struct()
    merged = RecordMerger(MergeReport(), RecordLimits()).merge(schema, [deep, {"id": 1}])
    assert merged == 1
    assert encode_type(schema) == {"struct": [["id", "int"]]}


def _value(rng: random.Random, depth: int) -> Any:
    """A JSON value mixing every type the signature tells apart, nested up to `depth`."""
    kind = rng.randrange(9 if depth > 0 else 7)
    scalars = [None, True, 7, 2**40, 1.5, "text", "2026-11-21", "2026-11-21T08:00:00Z"]
    if kind < 7:
        return rng.choice(scalars)
    if kind == 7:
        return [_value(rng, depth - 1) for _ in range(rng.randrange(3))]
    return {rng.choice("abc"): _value(rng, depth - 1) for _ in range(rng.randrange(3))}


def test_equal_signatures_mean_equal_types_and_depth_is_bounded() -> None:
    rng = random.Random(3)
    values = [{"r": _value(rng, 4)} for _ in range(3000)]
    by_signature: dict[Any, Any] = {}
    for value in values:
        signature = value_signature(value, 6)
        assert signature is not None
        typed = encode_type(infer(value))
        assert by_signature.setdefault(signature, typed) == typed
    assert len(by_signature) > 100  # the shapes under test were many
    assert value_signature(7, 1) == "int" and value_signature("2026-11-21", 1) == "date"
    assert value_signature([[1]], 2) is not None and value_signature({"a": {}}, 2) is not None
    assert value_signature([[1]], 1) is None and value_signature({"a": {}}, 1) is None
    assert value_signature({"a": {}}, 2) != value_signature({"a": []}, 2)
