"""The column-schema-change check of the schema assets, as one op with a readable name.

Dagster's `build_column_schema_change_checks` names its op `asset_check_<hash of the check
keys>`, which is what a run's chart shows; this is the same check (Dagster's own schema
diff of the two latest materializations' `dagster/column_schema`, WARN severity, the same
check name `column_schema_change`) in an op called `column_schema_change`.
"""

from collections.abc import Sequence

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    DagsterInstance,
    multi_asset_check,
)
from dagster._core.definitions.asset_checks.asset_check_factories.schema_change_checks import (
    TableSchemaDiff,
)
from dagster._core.definitions.metadata import TableMetadataSet

CHECK_NAME = "column_schema_change"


def build_schema_change_check(asset_keys: Sequence[AssetKey]) -> AssetChecksDefinition:
    """One `column_schema_change` check per asset, run by one op of the same name."""

    @multi_asset_check(
        name=CHECK_NAME,
        specs=[
            AssetCheckSpec(
                CHECK_NAME,
                asset=key,
                description="Whether the column schema changed between the asset's two most "
                "recent materializations",
            )
            for key in asset_keys
        ],
        can_subset=True,
    )
    def _check(context: AssetCheckExecutionContext):
        for check_key in context.selected_asset_check_keys:
            passed, description = schema_change(context.instance, check_key)
            yield AssetCheckResult(
                passed=passed,
                description=description,
                severity=AssetCheckSeverity.WARN,
                check_name=check_key.name,
                asset_key=check_key.asset_key,
            )

    return _check


def schema_change(instance: DagsterInstance, check_key: AssetCheckKey) -> tuple[bool, str]:
    """(passed, description) from the two latest materializations of the check's asset."""
    records = instance.fetch_materializations(limit=2, records_filter=check_key.asset_key).records
    if len(records) < 2:
        return True, "The asset has been materialized fewer than 2 times"
    latest, previous = (
        TableMetadataSet.extract(r.asset_materialization.metadata).column_schema for r in records
    )
    if latest is None:
        return False, "Latest materialization has no column schema metadata"
    if previous is None:
        return False, "Previous materialization has no column schema metadata"
    diff = TableSchemaDiff.from_table_schemas(previous, latest)
    changes = []
    if diff.added_columns:
        changes.append(f"Added columns: {', '.join(c.name for c in diff.added_columns)}")
    if diff.removed_columns:
        changes.append(f"Removed columns: {', '.join(c.name for c in diff.removed_columns)}")
    if diff.column_type_changes:
        types = (
            f"- {n}: {c.old_type} -> {c.new_type}" for n, c in diff.column_type_changes.items()
        )
        changes.append("Column type changes:\n" + "\n".join(types))
    if not changes:
        return True, "No changes to column schema between previous and latest materialization"
    summary = "Column schema changed between previous and latest materialization."
    return False, "\n\n".join([summary, *changes])
