"""What an operator is told about a stream: who owns it, how long it may stay silent, and
which version of its streams.yaml entry the data was produced with."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

DEFAULT_OWNERS = ("team:data-platform",)
# Firehose delivers at least every 15 minutes (its largest buffer interval) while data
# flows, and the sensor picks objects up within a minute: an hour with no cleaned run
# means the stream (or its pipeline) went silent.
DEFAULT_FRESHNESS_FAIL_MINUTES = 60
DEFAULT_FRESHNESS_WARN_MINUTES = 30
_OWNER = re.compile(r"team:[A-Za-z0-9_.-]+|[^@\s]+@[^@\s]+\.[^@\s]+")  # Dagster's two forms


class OperationsError(ValueError):
    """An owners or freshness entry of streams.yaml is not valid."""


@dataclass(frozen=True)
class Operations:
    owners: tuple[str, ...] = DEFAULT_OWNERS
    freshness_fail_minutes: int = DEFAULT_FRESHNESS_FAIL_MINUTES
    freshness_warn_minutes: int | None = DEFAULT_FRESHNESS_WARN_MINUTES


def parse_operations(body: dict[str, Any], where: str) -> Operations:
    """`owners` (team:<name> or e-mail addresses) and `freshness` ({fail_minutes,
    warn_minutes}) of a stream entry, with the defaults above."""
    owners = body.get("owners", list(DEFAULT_OWNERS))
    if isinstance(owners, str):
        owners = [owners]
    if not owners or not all(isinstance(o, str) and _OWNER.fullmatch(o) for o in owners):
        raise OperationsError(f"{where}: owners must be team:<name> or e-mail addresses")
    freshness = body.get("freshness") or {}
    unknown = set(freshness) - {"fail_minutes", "warn_minutes"}
    if unknown:
        raise OperationsError(f"{where}: unknown freshness settings {sorted(unknown)}")
    fail = freshness.get("fail_minutes", DEFAULT_FRESHNESS_FAIL_MINUTES)
    default_warn = fail // 2 if fail >= 2 else None
    warn = freshness.get("warn_minutes", default_warn)
    if not isinstance(fail, int) or fail < 1:
        raise OperationsError(f"{where}: freshness fail_minutes must be a whole number >= 1")
    if warn is not None and (not isinstance(warn, int) or not 1 <= warn < fail):
        raise OperationsError(f"{where}: freshness warn_minutes must be 1..fail_minutes-1")
    return Operations(tuple(owners), fail, warn)


def entry_version(body: dict[str, Any]) -> str:
    """A stable hash of a stream's streams.yaml entry: the same content (whatever its key
    order, quoting or comments) gives the same version; any change gives another."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
