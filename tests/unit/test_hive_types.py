"""Hive type inference, merge rules, the type-string round trip and flattening."""

from __future__ import annotations

import pytest

from lake.hive_types import (
    NULL,
    Array,
    MergeReport,
    Struct,
    add_new_fields,
    case_variants,
    catalog_names,
    from_catalog,
    infer,
    leaf_columns,
    merge,
    normalize_name,
    parse_hive,
    to_hive,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, NULL),
        (True, "boolean"),
        (0, "int"),
        (2**31 - 1, "int"),
        (2**31, "bigint"),
        (-(2**31), "int"),
        (-(2**31) - 1, "bigint"),
        (1.5, "double"),
        ("x", "string"),
    ],
)
def test_infer_scalars(value: object, expected: str) -> None:
    assert infer(value) == expected


def test_infer_nested_normalizes_names() -> None:
    t = infer({"A": 1, "Sub-Doc": {"x": [1, 2**40]}, "tags": [], "n": None})
    assert to_hive(t) == "struct<a:int,sub_doc:struct<x:array<bigint>>,tags:array<string>,n:string>"


@pytest.mark.parametrize("t", ["int", "bigint", "double", "string", "boolean", "timestamp"])
def test_null_merges_to_the_other_type(t: str) -> None:
    assert merge(NULL, t) == t
    assert merge(t, NULL) == t


def test_null_merges_with_nested_types() -> None:
    s = Struct({"a": "int"})
    assert merge(NULL, s) == s
    assert merge(s, NULL) == s
    assert merge(NULL, Array("int")) == Array("int")


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("int", "bigint", "bigint"),
        ("bigint", "int", "bigint"),
        ("int", "double", "double"),
        ("double", "int", "double"),
        ("bigint", "double", "double"),
        ("int", "int", "int"),
        ("int", "string", "string"),
        ("string", "double", "string"),
        ("bigint", "string", "string"),
        ("boolean", "int", "string"),
    ],
)
def test_scalar_widening(a: str, b: str, expected: str) -> None:
    report = MergeReport()
    assert merge(a, b, report=report) == expected
    assert report.conflicts == []  # scalar widening is not a conflict


def test_struct_union_is_recursive_and_keeps_first_seen_order() -> None:
    a = Struct({"z": "int", "inner": Struct({"q": "int", "p": "string"}), "m": "int"})
    b = Struct({"new": "string", "inner": Struct({"r": "double", "q": "bigint"}), "z": "double"})
    merged = merge(a, b)
    assert isinstance(merged, Struct)
    assert list(merged.fields) == ["z", "inner", "m", "new"]
    assert merged.fields["z"] == "double"
    inner = merged.fields["inner"]
    assert isinstance(inner, Struct)
    assert list(inner.fields) == ["q", "p", "r"]
    assert inner.fields == {"q": "bigint", "p": "string", "r": "double"}
    assert to_hive(merged) == (
        "struct<z:double,inner:struct<q:bigint,p:string,r:double>,m:int,new:string>"
    )
    # the inputs are not modified
    assert to_hive(a) == "struct<z:int,inner:struct<q:int,p:string>,m:int>"
    assert to_hive(b) == "struct<new:string,inner:struct<r:double,q:bigint>,z:double>"


def test_array_element_types_merge() -> None:
    assert merge(Array("int"), Array("bigint")) == Array("bigint")
    assert merge(Array(NULL), Array("double")) == Array("double")
    merged = merge(Array(Struct({"a": "int"})), Array(Struct({"b": "string"})))
    assert to_hive(merged) == "array<struct<a:int,b:string>>"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (Struct({"a": "int"}), "int"),
        ("string", Struct({"a": "int"})),
        (Array("int"), "string"),
        (Struct({"a": "int"}), Array("int")),
    ],
)
def test_nested_versus_scalar_is_string_and_a_conflict(a: object, b: object) -> None:
    report = MergeReport()
    assert merge(a, b, "col", report) == "string"
    assert len(report.conflicts) == 1
    assert report.conflicts[0].startswith("col:")
    assert report.conflicts[0].endswith("-> string")


def test_conflict_path_names_the_nested_field() -> None:
    report = MergeReport()
    a = Struct({"outer": Struct({"x": Struct({"y": "int"})})})
    b = Struct({"outer": Struct({"x": "int"})})
    merged = merge(a, b, report=report)
    assert to_hive(merged) == "struct<outer:struct<x:string>>"
    assert report.conflicts == ["outer.x: struct<y:int> vs int -> string"]


def test_conflict_inside_array_elements() -> None:
    report = MergeReport()
    merged = merge(
        Struct({"l": Array("int")}), Struct({"l": Array(Struct({"k": "int"}))}), report=report
    )
    assert to_hive(merged) == "struct<l:array<string>>"
    assert len(report.conflicts) == 1
    assert report.conflicts[0].startswith("l[]:")


def test_to_hive_writes_null_as_string() -> None:
    assert to_hive(NULL) == "string"
    assert to_hive(Array(NULL)) == "array<string>"
    assert to_hive(Struct({"n": NULL})) == "struct<n:string>"


@pytest.mark.parametrize(
    "text",
    [
        "int",
        "timestamp",
        "array<string>",
        "array<array<bigint>>",
        "struct<a:int>",
        "struct<a:int,b:array<string>,c:struct<d:double,e:array<struct<f:boolean,g:bigint>>>>",
        "array<struct<x:string,y:struct<z:int>>>",
    ],
)
def test_parse_hive_round_trip(text: str) -> None:
    assert to_hive(parse_hive(text)) == text


def test_parse_hive_builds_objects() -> None:
    t = parse_hive("struct<a:int,b:array<struct<c:string>>>")
    assert t == Struct({"a": "int", "b": Array(Struct({"c": "string"}))})
    assert list(t.fields) == ["a", "b"]


def test_parse_hive_refuses_trailing_text() -> None:
    with pytest.raises(ValueError):
        parse_hive("struct<a:int>>")


def test_infer_to_hive_parse_round_trip() -> None:
    t = infer({"a": {"b": [{"c": 1.5, "d": "x"}], "e": True}, "f": 3})
    assert parse_hive(to_hive(t)) == t


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("eventTime", "eventtime"),
        ("Event-Type", "event_type"),
        ("a.b c", "a_b_c"),
        ("1st", "_1st"),
        ("9", "_9"),
        ("", "_"),
        ("already_ok_1", "already_ok_1"),
        ("Zoë", "zo_"),
    ],
)
def test_normalize_name(name: str, expected: str) -> None:
    assert normalize_name(name) == expected


def test_leaf_columns_flattens_structs_and_keeps_arrays() -> None:
    milking = parse_hive(
        "struct<yield_kg:double,quarters:array<struct<q:string>>,meta:struct<a:int,b:struct<c:string>>>"
    )
    assert leaf_columns(Struct({"milking": milking, "ts": "timestamp", "n": NULL})) == [
        ("milking_yield_kg", ("milking", "yield_kg"), "double"),
        ("milking_quarters", ("milking", "quarters"), "array<struct<q:string>>"),
        ("milking_meta_a", ("milking", "meta", "a"), "int"),
        ("milking_meta_b_c", ("milking", "meta", "b", "c"), "string"),
        ("ts", ("ts",), "timestamp"),
        ("n", ("n",), "string"),
    ]


def test_leaf_columns_keep_original_keys_and_make_safe_unique_names() -> None:
    schema = Struct({"User": Struct({"E-Mail": "string"}), "user": "int"})
    assert leaf_columns(schema, sep="__") == [
        ("user__e_mail", ("User", "E-Mail"), "string"),
        ("user_2", ("user",), "int"),
    ]


def test_catalog_names_round_trip_through_the_name_map() -> None:
    schema = infer({"userIdentity": {"userName": "a", "Tags": [{"Key": "k"}]}, "ok": True, "OK": 1})
    columns, name_map = catalog_names(schema)
    # `ok` and `OK` are one Athena column (boolean + int = string); case_variants keeps
    # each key's own type so that the schema comes back exactly.
    assert columns == [
        ("useridentity", "struct<username:string,tags:array<struct<key:string>>>"),
        ("ok", "string"),
    ]
    assert name_map == {
        "useridentity": "userIdentity",
        "useridentity.username": "userName",
        "useridentity.tags": "Tags",
        "useridentity.tags.key": "Key",
    }
    variants = case_variants(schema)
    assert variants == {"ok": {"ok": "boolean", "OK": "int"}}
    assert from_catalog(columns, name_map, variants) == schema


def test_iso_strings_are_timestamps_and_dates() -> None:
    assert infer("2026-11-21T08:01:02.123Z") == "timestamp"
    assert infer("2026-11-21 08:01:02+01:00") == "timestamp"
    assert infer("2026-11-21") == "date"
    assert infer("2026-11-21T08") == "string"
    assert merge("date", "timestamp") == "timestamp"
    assert merge("timestamp", "string") == "string"


def test_add_new_fields_adds_missing_fields_at_any_depth_and_keeps_base_types() -> None:
    base = parse_hive("struct<a:int,s:struct<x:int>,n:null>")
    extra = parse_hive("struct<a:string,s:struct<x:string,y:double>,n:boolean,z:array<int>>")
    out = add_new_fields(base, extra)
    assert to_hive(out) == "struct<a:int,s:struct<x:int,y:double>,n:boolean,z:array<int>>"
