"""The Iceberg tables' Glue calls against docs/security.md: the namespaces bind their own
placeholders, so only the Iceberg statements can allow them."""

from __future__ import annotations

import pytest

from tests.iam_actions import call_access
from tests.iam_policy import is_allowed, load_policies

POLICIES = load_policies()
REGION = "eu-west-1"


def _allowed(role: str, operation: str, database: str, table: str | None = None) -> bool:
    if table:
        params: dict = {"DatabaseName": database, "Name": table}
    elif operation == "CreateDatabase":
        params = {"DatabaseInput": {"Name": database}}
    else:
        params = {"Name": database}
    access = call_access("glue", operation, params, REGION, None)
    return all(is_allowed(POLICIES[role], a, access.bindings) for a in access.accesses)


def test_a_table_namespace_binds_its_own_placeholder_not_the_glue_sync_database() -> None:
    access = call_access(
        "glue", "GetTable", {"DatabaseName": "cleaned", "Name": "robot_telemetry"}, REGION, None
    )
    assert access.bindings["CleanedNamespace"] == "cleaned"
    assert "GlueDatabase" not in access.bindings
    sync = call_access(
        "glue", "GetTable", {"DatabaseName": "firehose_raw", "Name": "x"}, REGION, None
    )
    assert sync.bindings["GlueDatabase"] == "firehose_raw"


@pytest.mark.parametrize("namespace", ["cleaned", "quarantine", "marts"])
@pytest.mark.parametrize("operation", ["GetTable", "CreateTable", "UpdateTable"])
def test_the_code_location_commits_to_every_namespace(namespace: str, operation: str) -> None:
    assert _allowed("code-location", operation, namespace, "robot_telemetry")
    assert _allowed("code-location", "GetDatabase", namespace)
    assert _allowed("code-location", "CreateDatabase", namespace)


def test_the_code_location_cannot_delete_tables_or_touch_other_databases() -> None:
    assert not _allowed("code-location", "DeleteTable", "cleaned", "robot_telemetry")
    assert not _allowed("code-location", "DeleteDatabase", "cleaned")
    # the Glue sync's grant names ${GlueDatabase} only: a namespace is not covered by it
    assert not _allowed("code-location", "BatchCreatePartition", "cleaned", "robot_telemetry")


def test_analysts_read_cleaned_and_marts_tables_but_not_quarantine() -> None:
    assert _allowed("analyst", "GetTable", "cleaned", "robot_telemetry")
    assert _allowed("analyst", "GetTable", "marts", "milking_per_cow_daily")
    assert not _allowed("analyst", "GetTable", "quarantine", "robot_telemetry")
    assert not _allowed("analyst", "UpdateTable", "cleaned", "robot_telemetry")
    assert _allowed("quarantine-reviewer", "GetTable", "quarantine", "robot_telemetry")
    assert not _allowed("quarantine-reviewer", "GetTable", "cleaned", "robot_telemetry")


def test_configured_namespace_names_are_the_ones_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLEANED_NAMESPACE", "lake_cleaned")
    table = {"DatabaseName": "lake_cleaned", "Name": "robot_telemetry"}
    assert call_access("glue", "GetTable", table, REGION, None).bindings["CleanedNamespace"] == (
        "lake_cleaned"
    )
    # `cleaned` is no longer a namespace: only the Glue sync's grant could cover it
    other = call_access("glue", "GetTable", {"DatabaseName": "cleaned", "Name": "x"}, REGION, None)
    assert "CleanedNamespace" not in other.bindings
