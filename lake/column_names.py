"""Cleaned column names that never move: original key path -> flat column name.

A flat name is the record's key path in Glue-safe spelling (`Mixed.In-ner` ->
`mixed_in_ner`). Different paths can spell the same (`a.b`, `a_b`, `A_B`, `a-b`, or the
top-level key `a_b` beside the struct `a` with a field `b`), and the order keys are first
seen in differs from hour to hour, so names are not re-derived from the schema on each
run: the crawler keeps the assignment in the catalog table (parameter `columnNames`) and a
name once given is never given to another path. A new path takes its plain spelling when
it is free, else the spelling plus a hash of the original path, so which suffix a key gets
does not depend on what else arrived with it. Names are capped at the stream's
`max_name_bytes` (Redshift: 127) the same way.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

Path = tuple[str, ...]
PARAMETER = "columnNames"  # catalog table parameter: {column name: [original keys...]}
_DIGEST_CHARS = 8


def path_digest(path: Path, salt: int = 0) -> str:
    text = json.dumps([*path, salt] if salt else list(path), ensure_ascii=False)
    return hashlib.md5(text.encode()).hexdigest()[:_DIGEST_CHARS]


def capped(name: str, path: Path, max_bytes: int) -> str:
    """`name` if it fits, else its head and the path's digest (names are ASCII)."""
    if len(name) <= max_bytes:
        return name
    return f"{name[: max_bytes - _DIGEST_CHARS - 1]}_{path_digest(path)}"


def assign_columns(
    leaves: list[tuple[str, Path]],
    assigned: dict[Path, str],
    max_bytes: int,
    reserved: frozenset[str] = frozenset(),
) -> dict[Path, str]:
    """`assigned` plus a name for every leaf (plain spelling, original path) it lacks.

    New paths are named in a fixed order (those already spelled plainly first, then by
    path), so two colliding keys that arrive together get the same names in any order."""
    out = dict(assigned)
    used = set(out.values()) | reserved
    new = {path: flat for flat, path in leaves if path not in out}
    for path in sorted(new, key=lambda p: (new[p] != "_".join(p), p)):
        name = capped(new[path], path, max_bytes)
        salt = 0
        while name in used:
            digest = path_digest(path, salt)
            name = f"{new[path][: max_bytes - _DIGEST_CHARS - 1]}_{digest}"
            salt += 1
        used.add(name)
        out[path] = name
    return out


def legacy_assignment(leaves: list[tuple[str, Path]], reserved: frozenset[str]) -> dict[Path, str]:
    """The names cleaning gave before they were kept in the catalog (a collision got `_2`,
    `_3`... in leaf order), so tables crawled before keep their columns."""
    used = set(reserved)
    out = {}
    for flat, path in leaves:
        name, n = flat, 2
        while name in used:
            name, n = f"{flat}_{n}", n + 1
        used.add(name)
        out[path] = name
    return out


def to_parameter(assigned: dict[Path, str]) -> str:
    return json.dumps({name: list(path) for path, name in sorted(assigned.items(), key=_by_name)})


def from_parameter(text: str) -> dict[Path, str]:
    doc: dict[str, Any] = json.loads(text)
    return {tuple(path): name for name, path in doc.items()}


def _by_name(item: tuple[Path, str]) -> str:
    return item[1]


# The lineage columns every cleaned file ends with: no record key may take their names.
LINEAGE_NAMES = frozenset({"_source_key", "_position", "_arrival_hour", "_ingested_at"})
# Nor the names the cleaning query gives its own columns beside the record's
# (lake.cleaning.typing_query, typed, masking): a key `_key_hash` failed the whole pass.
WORKING_NAMES = frozenset(
    {"_object", "_jt", "_l", "_j", "_shape", "_none", "_none2", "_event_any", "_key_hash"}
    | {"_key_hi", "_key_lo", "_reason", "_dt", "_t"}
)
RESERVED_NAMES = LINEAGE_NAMES | WORKING_NAMES
