"""What changed between two schemas, and what a stream's policies let into its table.

A diff lists added, removed, widened and conflicting paths; the compatibility mode says
which changes are forbidden, the change policy which ones the table takes, and the column
limit how many new leaves fit (docs/schema-rules.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from lake.hive_types import (
    NULL,
    Array,
    HiveType,
    Struct,
    add_new_fields,
    is_widening,
    leaf_columns,
    to_hive,
    without_paths,
)
from lake.json_fields import Path, dotted


@dataclass
class SchemaDiff:
    """Dotted paths of original keys; `widened`/`conflicting` entries say `path: old -> new`."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    widened: list[str] = field(default_factory=list)
    conflicting: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.widened or self.conflicting)

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "added": self.added,
            "removed": self.removed,
            "widened": self.widened,
            "conflicting": self.conflicting,
        }


def diff_schemas(old: Struct, new: Struct, prefix: str = "") -> SchemaDiff:
    diff = SchemaDiff()
    for name, t in new.fields.items():
        path = f"{prefix}{name}"
        if name not in old.fields or old.fields[name] == NULL:
            if t != NULL:
                diff.added.append(path)
            continue
        _diff_type(old.fields[name], t, path, diff)
    diff.removed = [f"{prefix}{n}" for n in old.fields if n not in new.fields]
    return diff


def _diff_type(old: HiveType, new: HiveType, path: str, diff: SchemaDiff) -> None:
    if isinstance(old, Struct) and isinstance(new, Struct):
        sub = diff_schemas(old, new, f"{path}.")
        for kind in ("added", "removed", "widened", "conflicting"):
            getattr(diff, kind).extend(getattr(sub, kind))
    elif isinstance(old, Array) and isinstance(new, Array):
        _diff_type(old.element, new.element, f"{path}[]", diff)
    elif to_hive(old) != to_hive(new):
        change = f"{path}: {to_hive(old)} -> {to_hive(new)}"
        scalar = isinstance(old, str) and isinstance(new, str)
        (diff.widened if scalar and is_widening(old, new) else diff.conflicting).append(change)


def incompatibilities(diff: SchemaDiff, mode: str) -> list[str]:
    """Changes the compatibility mode forbids. Every JSON field is optional, so adding or
    dropping one is always compatible. BACKWARD (new readers read old data) allows
    widening; FORWARD and FULL (old readers read new data) do not; a struct or array
    turning into a string breaks every mode but NONE."""
    if mode == "none":
        return []
    if mode == "backward":
        return list(diff.conflicting)
    return diff.widened + diff.conflicting


def apply_policy(
    policy: str, old: Struct, sampled: Struct, proposed: Struct, incompatible: list[str]
) -> Struct:
    if incompatible or policy == "log":
        return old
    if policy == "merge_new_columns":
        return add_new_fields(old, sampled)
    return proposed


def within_column_limit(old: Struct, new: Struct, max_columns: int) -> tuple[Struct, list[str]]:
    """`new` with at most `max_columns` leaves: every leaf of `old` stays, new leaves are
    taken in column order while there is room; returns the dotted paths left out."""
    old_paths = {path for _, path, _ in leaf_columns(old)}
    fresh = [path for _, path, _ in leaf_columns(new) if path not in old_paths]
    room = max(0, max_columns - len(old_paths))
    if len(fresh) <= room:
        return new, []
    left_out = fresh[room:]
    return without_paths(new, set(left_out)), [".".join(p) for p in left_out]


def has_path(schema: Struct, path: Path) -> bool:
    node: HiveType = schema
    for key in path:
        if not isinstance(node, Struct) or key not in node.fields:
            return False
        node = node.fields[key]
    return True


def made_json(before: Struct, after: Struct, paths: Iterable[Path]) -> list[str]:
    """`path: struct<...> -> string (JSON text)` for each stored struct or array made JSON."""
    out = []
    for path in paths:
        old: HiveType = before
        for key in path:
            old = old.fields.get(key, NULL) if isinstance(old, Struct) else NULL
        if isinstance(old, Struct | Array) and has_path(after, path):
            out.append(f"{dotted(path)}: {to_hive(old)} -> string (JSON text)")
    return out
