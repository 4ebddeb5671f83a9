"""A reviewable picture of the definitions generated from streams.yaml and sql/marts/.

`python -m tests.dagster.definitions_snapshot > tests/dagster/definitions_snapshot.json`
rewrites the snapshot after an intended change; the diff is then part of the review.
Partition start dates and code-version hashes are left out: they follow the environment
and every edit of streams.yaml or a SQL file, not the shape of the definitions.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from dagster import Definitions, PartitionsDefinition, TimeWindowPartitionsDefinition


def _partitions(partitions_def: PartitionsDefinition | None) -> str | None:
    if partitions_def is None:
        return None
    if isinstance(partitions_def, TimeWindowPartitionsDefinition):
        return f"{partitions_def.cron_schedule} end_offset={partitions_def.end_offset}"
    return type(partitions_def).__name__


def _keys(keys: Any) -> list[str]:
    return sorted(k.to_user_string() for k in keys)


def snapshot(defs: Definitions) -> dict[str, Any]:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "deps": _keys(node.parent_keys),
            "group": node.group_name,
            "partitions": _partitions(node.partitions_def),
            "backfill_policy": str(node.backfill_policy.policy_type)
            if node.backfill_policy
            else None,
            "kinds": sorted(node.kinds),
            "owners": sorted(node.owners),
            "tags": dict(sorted(node.tags.items())),
            "pools": sorted(node.pools or []),
            "has_code_version": node.code_version is not None,
            "freshness_policy": type(node.freshness_policy).__name__
            if node.freshness_policy
            else None,
        }
    checks = {
        f"{c.asset_key.to_user_string()}:{c.name}": {"blocking": graph.get_check_spec(c).blocking}
        for c in graph.asset_check_keys
    }
    jobs = {
        job.name: {"assets": _keys(job.asset_layer.selected_asset_keys)}
        for job in defs.resolve_all_job_defs()
        if not job.name.startswith("__")
    }
    sensors = {
        s.name: {
            "jobs": sorted(j.name for j in s.jobs) if s.has_jobs else [],
            "default_status": s.default_status.value,
            "minimum_interval_seconds": s.minimum_interval_seconds,
        }
        for s in defs.sensors or []
    }
    schedules = {
        s.name: {
            "cron": s.cron_schedule,
            "job": s.job_name,
            "default_status": s.default_status.value,
        }
        for s in defs.schedules or []
    }
    return {
        "assets": dict(sorted(assets.items())),
        "asset_checks": dict(sorted(checks.items())),
        "jobs": dict(sorted(jobs.items())),
        "sensors": dict(sorted(sensors.items())),
        "schedules": dict(sorted(schedules.items())),
        "resources": sorted(defs.resources or {}),
    }


def render(defs: Definitions) -> str:
    return json.dumps(snapshot(defs), indent=2) + "\n"


if __name__ == "__main__":
    from orchestration.definitions import defs

    sys.stdout.write(render(defs))
