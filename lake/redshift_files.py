"""A mart partition's Redshift files in the lake: the table's DDL, the partition's COPY
manifest and load script (texts from lake.redshift), and the state that remembers what
the deployed table has (`_state/redshift/<mart>.json`: VARCHAR widths, columns)."""

from __future__ import annotations

import json
from datetime import date

import pyarrow as pa

from lake import layout, redshift
from lake.marts import MartSpec
from lake.storage import ObjectNotFound, Storage


def write_redshift_files(
    lake: Storage,
    spec: MartSpec,
    day: date | None,
    parquet_key: str,
    parquet_size: int,
    result: pa.Table,
    iam_role: str,
) -> list[str]:
    """DDL for the table (VARCHAR widths the widest any partition needed so far, columns
    the deployed table lacks added), and the partition's manifest and load script."""
    state_key = layout.redshift_state(spec.name)
    try:
        state = json.loads(lake.read(state_key))
    except ObjectNotFound:
        state = {}
    known = state.get("varchar_widths", {})
    columns = redshift.columns_of(result, known)
    widened = [c for c in columns if c.width and c.name in known and c.width > known[c.name]]
    # a state written before it listed columns: the table's columns are not known
    deployed = state.get("columns")
    added = [c for c in columns if deployed is not None and c.name not in deployed]
    manifest_key = layout.redshift_manifest(spec.name, day)
    files = {
        layout.redshift_ddl(spec.name): redshift.create_table_ddl(spec, columns),
        manifest_key: redshift.manifest([(lake.uri_of(parquet_key), parquet_size)]),
        layout.redshift_load_script(spec.name, day): redshift.load_script(
            *redshift.load_statements(
                spec,
                columns,
                lake.uri_of(manifest_key),
                str(day) if day else None,
                widened,
                iam_role,
                added,
            )
        ),
    }
    for key, text in files.items():
        lake.write(key, text.encode())
    widths = {**known, **{c.name: c.width for c in columns if c.width}}
    names = [c.name for c in columns]
    lake.write(
        state_key, json.dumps({"varchar_widths": widths, "columns": names}, indent=1).encode()
    )
    return list(files)
