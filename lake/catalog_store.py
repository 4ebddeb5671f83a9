"""The Glue-shaped catalog kept as JSON files in the lake, and reading its tables back.

Layout under the lake: catalog/<database>/<table>.json,
catalog/<database>/<table>/versions/<n>.json, catalog/<database>/<table>/partitions/<values>.json.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

from lake import layout
from lake.column_names import PARAMETER, RESERVED_NAMES, from_parameter, legacy_assignment
from lake.hive_types import (
    NULL,
    HiveType,
    Struct,
    from_catalog,
    leaf_columns,
    restore_empty_objects,
)
from lake.storage import ObjectNotFound, PreconditionFailed, Storage

if TYPE_CHECKING:
    from lake.schema_drift import SchemaDiff


class Catalog:
    """The Glue-shaped catalog kept as JSON files in the lake.

    The table is read-merged-written, so it is committed by compare-and-swap
    (read_table gives its version tag, commit_table writes only if it is unchanged); the
    commit's winner alone owns the new VersionId, so version files are numbered without
    gaps or overwrites however many crawls race."""

    COMMIT_ATTEMPTS = 20

    def __init__(self, lake: Storage, database: str) -> None:
        self.lake = lake
        self.database = database

    def table_key(self, table: str) -> str:
        return layout.catalog_table(self.database, table)

    def get_table(self, table: str) -> dict[str, Any] | None:
        return self._get(self.table_key(table))

    def read_table(self, table: str) -> tuple[dict[str, Any] | None, str | None]:
        """The table and its version tag for commit_table (None, None when absent)."""
        found = self.lake.read_versioned(self.table_key(table))
        return (json.loads(found[0]), found[1]) if found else (None, None)

    def commit_table(
        self, table: dict[str, Any], read_tag: str | None, diff: SchemaDiff | None
    ) -> None:
        """Write the table if it is still as read (PreconditionFailed otherwise: re-read,
        re-merge, retry); with a diff, then its version file (the table names the version:
        a crash in between leaves that one version file missing, never a wrong one)."""
        self.lake.write_if(self.table_key(table["Name"]), _dumps(table), read_tag)
        if diff is not None:
            self.put_version(table, int(table["VersionId"]), diff)

    def version_key(self, table: str, version: int) -> str:
        return layout.catalog_version(self.database, table, version)

    def repair_version(self, table: dict[str, Any]) -> None:
        """Write the committed table's version file if a crash left it out (its diff is
        then unknown). Create-only: the committing writer's own, later write wins."""
        key = self.version_key(table["Name"], int(table["VersionId"]))
        if self.lake.exists(key):
            return
        doc = {"version": int(table["VersionId"]), "created_at": table["UpdateTime"]}
        doc |= {"diff": None, "repaired": "written after a crash, diff unknown", "table": table}
        with contextlib.suppress(PreconditionFailed):
            self.lake.write_if(key, _dumps(doc), None)

    def put_version(self, table: dict[str, Any], version: int, diff: SchemaDiff) -> None:
        doc = {
            "version": version,
            "created_at": table["UpdateTime"],
            "diff": diff.as_dict(),
            "table": table,
        }
        self.lake.write(self.version_key(table["Name"], version), _dumps(doc))

    def partition_key(self, table: str, values: list[str]) -> str:
        return layout.catalog_partition(self.database, table, values)

    def get_partition(self, table: str, values: list[str]) -> dict[str, Any] | None:
        return self._get(self.partition_key(table, values))

    def put_partition(self, table: str, doc: dict[str, Any]) -> None:
        self.lake.write(self.partition_key(table, doc["Values"]), _dumps(doc))

    def _get(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.lake.read(key))
        except ObjectNotFound:
            return None


def stored_schema(table: dict[str, Any] | None) -> Struct:
    """The table's columns as a Struct keyed by the records' original keys."""
    if not table:
        return Struct()
    params = table.get("Parameters", {})
    columns = [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]
    name_map = json.loads(params.get("fieldNameMap", "{}"))
    schema = from_catalog(columns, name_map, json.loads(params.get("caseVariants", "{}")))
    for path in json.loads(params.get("nullOnlyFields", "[]")):
        _set_null(schema, path.split("."))
    restore_empty_objects(schema, json.loads(params.get("emptyObjectFields", "[]")))
    return schema


def _set_null(schema: Struct, path: list[str]) -> None:
    node: HiveType = schema
    for part in path[:-1]:
        node = node.fields.get(part) if isinstance(node, Struct) else None  # type: ignore[assignment]
    if isinstance(node, Struct) and path[-1] in node.fields:
        node.fields[path[-1]] = NULL


def column_assignment(table: dict[str, Any] | None) -> dict[tuple[str, ...], str]:
    """The table's cleaned column names by original key path (see lake.column_names);
    a table written before they were kept gets the names cleaning gave it then."""
    if not table:
        return {}
    text = table.get("Parameters", {}).get(PARAMETER)
    if text:
        return from_parameter(text)
    leaves = [(flat, path) for flat, path, _ in leaf_columns(stored_schema(table))]
    return legacy_assignment(leaves, RESERVED_NAMES)


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, indent=2).encode()
