"""The IAM policies of docs/security.md, and a small evaluator of them.

Each policy is a fenced ```json block right after a `<!-- policy: <role> -->` line. The
evaluator covers what those policies use: Allow and Deny statements, Action and Resource
with `*`/`?` wildcards, `${Placeholder}` names bound per call, and StringLike /
StringEquals conditions. An explicit Deny wins; no matching Allow means denied.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SECURITY_DOC = Path(__file__).resolve().parents[1] / "docs" / "security.md"
_BLOCK = re.compile(r"<!--\s*policy:\s*([\w-]+)\s*-->\s*```json\n(.*?)```", re.S)
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
_SUPPORTED_KEYS = {"Sid", "Effect", "Action", "Resource", "Condition"}
_OPERATORS = ("StringLike", "StringEquals")


@dataclass(frozen=True)
class Access:
    """One IAM action on one resource, with the request's condition keys (s3:prefix...)."""

    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        extra = "".join(f" {k}={v!r}" for k, v in sorted(self.context.items()))
        return f"{self.action} on {self.resource}{extra}"


def load_policies(doc: Path = SECURITY_DOC) -> dict[str, dict[str, Any]]:
    """role -> policy document, as written in the doc."""
    policies: dict[str, dict[str, Any]] = {}
    for role, body in _BLOCK.findall(doc.read_text()):
        if role in policies:
            raise ValueError(f"{doc}: two policies for role {role!r}")
        policy = json.loads(body)
        for statement in policy["Statement"]:
            unknown = set(statement) - _SUPPORTED_KEYS
            if unknown:
                raise ValueError(f"{role}: the evaluator does not support {sorted(unknown)}")
        policies[role] = policy
    return policies


def placeholders(policy: Mapping[str, Any]) -> set[str]:
    return set(_PLACEHOLDER.findall(json.dumps(policy)))


def is_allowed(policy: Mapping[str, Any], access: Access, bindings: Mapping[str, str]) -> bool:
    matching = [s for s in policy["Statement"] if _matches(s, access, bindings)]
    if any(s["Effect"] == "Deny" for s in matching):
        return False
    return any(s["Effect"] == "Allow" for s in matching)


def _matches(statement: Mapping[str, Any], access: Access, bindings: Mapping[str, str]) -> bool:
    actions = _as_list(statement["Action"])
    if not any(_glob(a, bindings, ignore_case=True).fullmatch(access.action) for a in actions):
        return False
    resources = _as_list(statement["Resource"])
    if not any(_glob(r, bindings).fullmatch(access.resource) for r in resources):
        return False
    return _conditions_hold(statement.get("Condition", {}), access.context, bindings)


def _conditions_hold(
    condition: Mapping[str, Mapping[str, Any]],
    context: Mapping[str, str],
    bindings: Mapping[str, str],
) -> bool:
    for operator, tests in condition.items():
        if operator not in _OPERATORS:
            raise ValueError(f"condition operator {operator} is not supported")
        for key, expected in tests.items():
            value = context.get(key)
            if value is None:  # IAM: a missing key fails a String* condition
                return False
            patterns = _as_list(expected)
            exact = operator == "StringEquals"
            if not any(_glob(p, bindings, literal=exact).fullmatch(value) for p in patterns):
                return False
    return True


def _as_list(value: str | Iterable[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _drop_empty(pattern: str, bindings: Mapping[str, str]) -> str:
    """`${LakePrefix}/` with an empty prefix (a storage at the bucket's root) is nothing,
    not a leading slash."""
    return re.sub(
        r"\$\{(\w+)\}/", lambda m: "" if bindings.get(m.group(1)) == "" else m.group(0), pattern
    )


_NEVER = re.compile(r"(?!)")


def _glob(
    pattern: str, bindings: Mapping[str, str], ignore_case: bool = False, literal: bool = False
) -> re.Pattern[str]:
    """IAM wildcards in the policy's own text (none when `literal`); a bound value is
    matched literally; a placeholder with no value matches nothing."""
    text = re.escape if literal else _wildcards
    pattern = _drop_empty(pattern, bindings)
    parts: list[str] = []
    position = 0
    for m in _PLACEHOLDER.finditer(pattern):
        parts.append(text(pattern[position : m.start()]))
        if m.group(1) not in bindings:
            return _NEVER
        parts.append(re.escape(bindings[m.group(1)]))
        position = m.end()
    parts.append(text(pattern[position:]))
    return re.compile("".join(parts), re.I if ignore_case else 0)


def _wildcards(text: str) -> str:
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)
