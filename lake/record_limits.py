"""Record shapes the pipeline refuses (docs/cleaning.md, "Limits"): too deep, a key too
long, too many columns. The checks walk with an explicit stack, never by recursion, so a
record nested 100,000 levels deep is a quarantine reason, not a RecursionError."""

from __future__ import annotations

import re
from typing import Any

from lake.streams import RecordLimits

TOO_MANY_COLUMNS = "too many columns"
TOO_DEEP = "nested too deeply"
KEY_TOO_LONG = "key too long"

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]")


def value_problem(value: Any, limits: RecordLimits, depth: int = 1) -> str | None:
    """Why a parsed JSON value (at nesting level `depth`) breaks the stream's limits on
    depth or key length, or None."""
    stack = [(value, depth)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                if problem := key_problem(key, limits):
                    return problem
                stack.append((inner, level + 1))
        elif isinstance(item, list):
            stack.extend((inner, level + 1) for inner in item)
        else:
            continue
        if level > limits.max_nesting_depth:
            return f"{TOO_DEEP}: more than {limits.max_nesting_depth} levels"
    return None


def key_problem(key: str, limits: RecordLimits) -> str | None:
    size = len(key.encode("utf-8", "surrogatepass"))
    if size > limits.max_key_bytes:
        return f"{KEY_TOO_LONG}: {size} bytes ({key[:40]!r}...), the stream allows {limits.max_key_bytes}"
    return None


def json_depth(text: str) -> int:
    """The deepest nesting of objects and arrays in JSON text, found without parsing it."""
    depth = deepest = 0
    for bracket in _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest
