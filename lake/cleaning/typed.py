"""Typing a pass's staged records: the typing query over them, then what their key lists
say (lake.cleaning.new_fields), fields the catalog lacks added for the run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from lake.cleaning.columns import Column, leaf_columns_of
from lake.cleaning.new_fields import (
    add_unknown_fields,
    keys_reason,
    quarantine_shapes,
    shape_keys,
    unknown_structure,
)
from lake.cleaning.staging import Staged
from lake.cleaning.tables import MASK_TEXTS, TYPED
from lake.cleaning.typing_query import (
    HINTED,
    cell_hints,
    masking_sets,
    masking_sql,
    raw_safe,
    typing_sql,
)
from lake.hive_types import Struct
from lake.json_fields import Path
from lake.streams import StreamSpec


@dataclass
class Typed:
    """What typing made: `table` (registered as `relation`), every staged record in
    (object, position) order with its typed columns or a `_reason`, its event date `_dt`,
    shape and key halves; `schema` is the one typed with (the catalog's, plus fields
    added for the run)."""

    table: pa.Table
    columns: list[Column]
    schema: Struct
    added: list[str] | None = None  # fields added for the run; None: none were unknown
    refused: dict[str, str] = field(default_factory=dict)  # unknown field -> why not added
    relation: str = TYPED

    @property
    def quarantined(self) -> int:
        return self.table.num_rows - self.table["_reason"].null_count


def type_records(
    con: duckdb.DuckDBPyConnection,
    staged: Staged,
    spec: StreamSpec,
    hour: datetime | Sequence[datetime],
    schema: Struct,
    assigned: dict[tuple[str, ...], str],
    json_paths: frozenset[Path],
) -> Typed:
    """Type every staged record (`hour`: the arrival hour, or each object's). Top-level fields the catalog lacks are added, typed from
    the records (and reported), not dropped, while the stream's limits allow them
    (max_columns, max_nesting_depth, max_key_bytes); records with a field that does not
    fit are quarantined."""
    limits = spec.limits
    source = staged.relation
    refused: dict[str, str] = {}
    added: list[str] | None = None
    while True:  # each round adds or refuses every unknown field: two rounds at most
        columns = leaf_columns_of(schema, spec, assigned, json_paths)
        table = con.sql(typing_sql(source, columns, spec, hour)).to_arrow_table()
        table = mask_by_text(con, table, columns, spec)
        con.register(TYPED, table)
        shapes = shape_keys(con, source)
        table = quarantine_shapes(con, table, shapes, refused, limits)
        unknown: dict[str, None] = {}  # first-seen order
        novel = []
        for shape, keys in shapes:
            if keys_reason(keys, limits) is not None:
                continue  # quarantined whole: its keys never reach the columns
            new = [k for k in keys if k not in schema.fields and k not in refused]
            unknown.update(dict.fromkeys(new))
            if new:
                novel.append(shape)
        if not unknown:
            return Typed(table, columns, schema, added, refused)
        found = unknown_structure(con, source, list(unknown), novel, refused, limits, json_paths)
        schema, new_fields = add_unknown_fields(schema, list(unknown), found, refused, limits)
        added = (added or []) + new_fields


def mask_by_text(
    con: duckdb.DuckDBPyConnection, table: pa.Table, columns: list[Column], spec: StreamSpec
) -> pa.Table:
    """`table` with its masked columns (typing_sql left their text) masked once per distinct
    text of each set of columns sharing their rules, not once per record and column:
    CloudTrail's 30-odd text columns under a dozen rules repeat few values (regions,
    agents, ARNs, request shapes), and masking every cell was most of its typing time.
    The query's HINTED column, if any, is dropped.

    In plain text columns under rules that all have literal hints, a cell holding none of
    them is left as it is (lake.pii_rules.text_rule_hints). A stream whose
    text columns only an email rule covers then pays a substring test per cell, not a
    dictionary (the 2 GB hour: 17 s of 64 s before); and where the hints are raw_safe,
    only the cells of records whose raw text holds one (HINTED) are tested: a column
    none of whose cells there holds a hint is left whole, untouched."""
    flagged = None
    if HINTED in table.column_names:
        flagged = pc.indices_nonzero(table[HINTED].combine_chunks().fill_null(False))
        table = table.drop_columns([HINTED])
    for members in masking_sets(columns, spec):
        hints = cell_hints(members, spec)
        if hints is not None and flagged is not None and raw_safe(hints):
            members = [c for c in members if _any_holding(table[c.name].take(flagged), hints)]
            if not members:
                continue
        texts = [table[c.name].cast(pa.string()).combine_chunks() for c in members]
        if hints is None:
            masked = _masked_once(con, texts, members, spec)
        else:
            hinted = [_holding_any(t, hints) for t in texts]
            cells = [t.filter(h) for t, h in zip(texts, hinted, strict=True)]
            masked = [
                pc.replace_with_mask(t, h, m) if len(m) else t
                for t, h, m in zip(
                    texts, hinted, _masked_once(con, cells, members, spec), strict=True
                )
            ]
        for c, column in zip(members, masked, strict=True):
            table = table.set_column(table.schema.get_field_index(c.name), c.name, column)
    return table


def _any_holding(texts: pa.ChunkedArray, hints: list[str]) -> bool:
    return len(texts) > 0 and pc.any(_holding_any(texts.cast(pa.string()), hints)).as_py()


def _holding_any(texts: pa.Array, hints: list[str]) -> pa.Array:
    held = pc.match_substring(texts, hints[0])
    for hint in hints[1:]:
        held = pc.or_(held, pc.match_substring(texts, hint))
    return held.fill_null(False)


def _masked_once(
    con: duckdb.DuckDBPyConnection, cells: list[pa.Array], members: list[Column], spec: StreamSpec
) -> list[pa.Array]:
    """Each member's `cells` masked, through one dictionary over all of them (NULL an
    entry too: masked like any text) and one masking query over its entries."""
    encoded = pc.dictionary_encode(pa.chunked_array(cells, pa.string()), null_encoding="encode")
    # (no chunk: no cells, but the query still gives the masked columns' types)
    texts = encoded.chunk(0).dictionary if encoded.num_chunks else pa.array([], pa.string())
    indices = pa.chunked_array([k.indices for k in encoded.chunks], pa.int32())
    con.register(MASK_TEXTS, pa.table({"v": texts}))
    try:
        masks = con.sql(masking_sql(MASK_TEXTS, members, spec)).to_arrow_table()
    finally:
        con.unregister(MASK_TEXTS)
    # by position: the texts, then each member (names from data may be anything)
    order = pc.index_in(texts, value_set=masks.column(0).combine_chunks(), skip_nulls=False)
    out, start = [], 0
    for i, c in enumerate(cells):
        column = masks.column(i + 1).take(order).take(indices.slice(start, len(c)))
        out.append(column.combine_chunks())
        start += len(c)
    return out
