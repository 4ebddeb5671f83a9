"""Optional sync of the lake's catalog (lake.crawler's GetTable-shaped JSON) into the AWS Glue
Data Catalog: create the database and table if missing, update the table only when what we own
differs, and register new partitions.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError

PARTITION_BATCH = 100  # Glue's BatchCreatePartition limit
DEFAULT_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 10})


@dataclass(frozen=True)
class SyncResult:
    database_created: bool
    table_created: bool
    table_updated: bool
    partitions_created: int
    partitions_existing: int


@dataclass
class PartitionFailure:
    values: list[str]
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.values}: {self.code}: {self.message}"


class GlueSyncError(RuntimeError):
    """BatchCreatePartition rejected partitions for a reason other than AlreadyExists."""

    def __init__(self, table: str, failures: list[PartitionFailure], result: SyncResult) -> None:
        shown = "; ".join(str(f) for f in failures[:5])
        more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
        super().__init__(f"Glue rejected {len(failures)} partition(s) of {table}: {shown}{more}")
        self.failures = failures
        self.result = result


@dataclass
class _PartitionCounts:
    created: int = 0
    existing: int = 0
    failures: list[PartitionFailure] = field(default_factory=list)


class GlueSync:
    """Push GetTable-shaped table dicts and their partitions into one Glue database."""

    def __init__(self, database: str, client: Any) -> None:
        self.database = database
        self.client = client  # boto3's Glue client, e.g. with DEFAULT_CONFIG's retries
        self._database_checked = False

    def sync_table(self, table: dict[str, Any], partitions: list[dict[str, Any]]) -> SyncResult:
        """Make Glue hold `table` and at least `partitions`; raise GlueSyncError (after trying
        every partition) if any partition failed for a reason other than already existing."""
        database_created = self.ensure_database()
        table_input = self.table_input(table)
        table_created, table_updated = self._upsert_table(table_input)
        counts = self._create_partitions(table_input, partitions)
        result = SyncResult(
            database_created=database_created,
            table_created=table_created,
            table_updated=table_updated,
            partitions_created=counts.created,
            partitions_existing=counts.existing,
        )
        if counts.failures:
            raise GlueSyncError(f"{self.database}.{table_input['Name']}", counts.failures, result)
        return result

    def ensure_database(self) -> bool:
        """Create the database if missing; True if this call created it."""
        if self._database_checked:
            return False
        created = False
        try:
            self.client.get_database(Name=self.database)
        except ClientError as exc:
            if _code(exc) != "EntityNotFoundException":
                raise
            created = self._create_database()
        self._database_checked = True
        return created

    def table_input(self, table: dict[str, Any]) -> dict[str, Any]:
        """A TableInput from a GetTable-shaped dict: read-only keys dropped, parameters as strings."""
        allowed = self._input_members("TableInput")
        out = {k: copy.deepcopy(v) for k, v in table.items() if k in allowed and v is not None}
        if "Parameters" in out:
            out["Parameters"] = _str_map(out["Parameters"])
        if "StorageDescriptor" in out:
            out["StorageDescriptor"] = _clean_storage(out["StorageDescriptor"])
        if "PartitionKeys" in out:
            out["PartitionKeys"] = [_clean_column(c) for c in out["PartitionKeys"]]
        return out

    def partition_input(
        self, table_input: dict[str, Any], partition: dict[str, Any]
    ) -> dict[str, Any]:
        """A PartitionInput inheriting the table's StorageDescriptor, with the partition's own
        StorageDescriptor keys (at least Location) on top."""
        storage = copy.deepcopy(table_input.get("StorageDescriptor", {}))
        storage.update(copy.deepcopy(partition.get("StorageDescriptor", {})))
        out: dict[str, Any] = {
            "Values": [str(v) for v in partition["Values"]],
            "StorageDescriptor": _clean_storage(storage),
        }
        if partition.get("Parameters"):
            out["Parameters"] = _str_map(partition["Parameters"])
        return out

    def _create_database(self) -> bool:
        try:
            self.client.create_database(DatabaseInput={"Name": self.database})
        except ClientError as exc:
            if _code(exc) != "AlreadyExistsException":  # created concurrently
                raise
            return False
        return True

    def _upsert_table(self, table_input: dict[str, Any]) -> tuple[bool, bool]:
        """(created, updated)."""
        current = self._get_table(table_input["Name"])
        if current is None:
            try:
                self.client.create_table(DatabaseName=self.database, TableInput=table_input)
                return True, False
            except ClientError as exc:
                if _code(exc) != "AlreadyExistsException":
                    raise
                current = self._get_table(table_input["Name"]) or {}
        if _covers(current, table_input):
            return False, False
        self.client.update_table(
            DatabaseName=self.database, TableInput=_keep_foreign_parameters(table_input, current)
        )
        return False, True

    def _get_table(self, name: str) -> dict[str, Any] | None:
        try:
            return self.client.get_table(DatabaseName=self.database, Name=name)["Table"]
        except ClientError as exc:
            if _code(exc) == "EntityNotFoundException":
                return None
            raise

    def _create_partitions(
        self, table_input: dict[str, Any], partitions: list[dict[str, Any]]
    ) -> _PartitionCounts:
        # Last one wins on duplicate values: Glue rejects a batch that repeats a partition.
        by_values = {tuple(str(v) for v in p["Values"]): p for p in partitions}
        inputs = [self.partition_input(table_input, p) for p in by_values.values()]
        counts = _PartitionCounts()
        for chunk in _chunks(inputs, PARTITION_BATCH):
            response = self.client.batch_create_partition(
                DatabaseName=self.database,
                TableName=table_input["Name"],
                PartitionInputList=chunk,
            )
            _count_batch(counts, len(chunk), response.get("Errors", []))
        return counts

    def _input_members(self, shape: str) -> frozenset[str]:
        # botocore's service model is the authority on which keys an *Input accepts.
        return frozenset(self.client.meta.service_model.shape_for(shape).members)


def _count_batch(counts: _PartitionCounts, sent: int, errors: list[dict[str, Any]]) -> None:
    existing = 0
    for error in errors:
        detail = error.get("ErrorDetail", {})
        code = detail.get("ErrorCode", "Unknown")
        if code == "AlreadyExistsException":
            existing += 1
        else:
            failure = PartitionFailure(
                error.get("PartitionValues", []), code, detail.get("ErrorMessage", "")
            )
            counts.failures.append(failure)
    counts.existing += existing
    counts.created += sent - len(errors)


def _covers(actual: Any, desired: Any) -> bool:
    """True if everything in `desired` is present and equal in `actual`. Keys only Glue (or
    someone else) set are ignored, so Glue's defaults do not count as a change; lists must
    match element by element (column order matters)."""
    if isinstance(desired, dict):
        return isinstance(actual, dict) and all(
            k in actual and _covers(actual[k], v) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(desired)
            and all(_covers(a, d) for a, d in zip(actual, desired, strict=True))
        )
    return actual == desired


def _keep_foreign_parameters(
    table_input: dict[str, Any], current: dict[str, Any]
) -> dict[str, Any]:
    """Table parameters we do not set (added by Athena, Lake Formation, people) survive updates."""
    foreign = current.get("Parameters") or {}
    return {**table_input, "Parameters": {**foreign, **table_input.get("Parameters", {})}}


def _clean_storage(storage: dict[str, Any]) -> dict[str, Any]:
    out = dict(storage)
    if "Columns" in out:
        out["Columns"] = [_clean_column(c) for c in out["Columns"]]
    if "Parameters" in out:
        out["Parameters"] = _str_map(out["Parameters"])
    if isinstance(out.get("SerdeInfo"), dict) and "Parameters" in out["SerdeInfo"]:
        out["SerdeInfo"] = {
            **out["SerdeInfo"],
            "Parameters": _str_map(out["SerdeInfo"]["Parameters"]),
        }
    return out


def _clean_column(column: dict[str, Any]) -> dict[str, Any]:
    # An empty Comment is dropped: Glue may return it absent, which would look like a change.
    out = {k: v for k, v in column.items() if v not in (None, "")}
    if "Parameters" in out:
        out["Parameters"] = _str_map(out["Parameters"])
    return out


def _str_map(params: dict[str, Any]) -> dict[str, str]:
    """Glue maps are string -> string; booleans in Hive's lowercase spelling."""
    return {str(k): _str_value(v) for k, v in params.items() if v is not None}


def _str_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _chunks(items: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")
