"""Marts are SQL files: a header of settings, then one DuckDB SELECT over cleaned.* and marts.*.

    -- partitioned_by: day          (day | none)
    -- unique_key: dt, cow_id
    -- diststyle: key              (Redshift: auto | even | key | all)
    -- distkey: cow_id
    -- sortkey: dt, cow_id
    -- description: free text
    SELECT ... FROM cleaned.robot_telemetry ...

Dependencies are read from the SQL with sqlglot, so adding a file adds a mart with its
lineage. A daily mart reads only its day's partitions (cleaned/<stream>/dt=<day>/) and
must select a `dt` column.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp

from lake.config import REPO_ROOT
from lake.parquet_writing import parquet_bytes
from lake.storage import LocalStorage, Storage

MARTS_DIR = REPO_ROOT / "sql" / "marts"
LAYERS = ("cleaned", "marts")
_HEADER = re.compile(r"^--\s*([a-z_]+)\s*:\s*(.*?)\s*$")
WarehouseConnect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]
_SETTINGS = ("partitioned_by", "unique_key", "diststyle", "distkey", "sortkey", "description")


class MartDefinitionError(ValueError):
    """A mart file that cannot be used: bad header, SQL that does not parse, unknown table."""


@dataclass(frozen=True)
class MartSpec:
    name: str
    path: Path
    sql: str
    deps: tuple[tuple[str, str], ...]  # (layer, table), layer in LAYERS
    partitioned_by: str = "day"
    unique_key: tuple[str, ...] = ()
    diststyle: str = "auto"
    distkey: str | None = None
    sortkey: tuple[str, ...] = ()
    description: str = ""


@dataclass
class MartBuild:
    rows: int = 0
    files: list[str] = field(default_factory=list)
    missing_inputs: list[str] = field(default_factory=list)
    columns: list[tuple[str, str]] = field(default_factory=list)


def load_marts(stream_names: set[str], folder: Path = MARTS_DIR) -> dict[str, MartSpec]:
    """Parse every `*.sql` mart; raise MartDefinitionError naming the file and the reason."""
    files = sorted(folder.glob("*.sql"))
    names = {f.stem for f in files}
    marts = {}
    for path in files:
        marts[path.stem] = parse_mart(path, stream_names, names)
    return marts


def parse_mart(path: Path, stream_names: set[str], mart_names: set[str]) -> MartSpec:
    text = path.read_text()
    settings: dict[str, str] = {}
    for line in text.splitlines():
        m = _HEADER.match(line.strip())
        if not m:
            if line.strip() and not line.strip().startswith("--"):
                break
            continue
        if m.group(1) not in _SETTINGS:
            raise MartDefinitionError(f"{path.name}: unknown header setting {m.group(1)!r}")
        settings[m.group(1)] = m.group(2)
    try:
        statements = [s for s in sqlglot.parse(text, read="duckdb") if s is not None]
    except sqlglot.errors.SqlglotError as exc:  # ParseError, and TokenError (e.g. an open quote)
        raise MartDefinitionError(f"{path.name}: SQL does not parse: {exc}") from exc
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise MartDefinitionError(f"{path.name}: a mart is exactly one SELECT statement")
    query = statements[0]
    ctes = {cte.alias_or_name for cte in query.find_all(exp.CTE)}
    deps = []
    for table in query.find_all(exp.Table):
        if not table.db and table.name in ctes:
            continue
        known = stream_names if table.db == "cleaned" else mart_names
        if table.db not in LAYERS or table.name not in known:
            raise MartDefinitionError(
                f"{path.name}: unknown table {table.sql(dialect='duckdb')!r}; marts read "
                f"cleaned.<stream> ({', '.join(sorted(stream_names))}) or marts.<mart>"
            )
        if table.db == "marts" and table.name == path.stem:
            raise MartDefinitionError(f"{path.name}: a mart cannot read itself")
        deps.append((table.db, table.name))
    partitioned_by = settings.get("partitioned_by", "day")
    if partitioned_by not in ("day", "none"):
        raise MartDefinitionError(f"{path.name}: partitioned_by must be day or none")
    return MartSpec(
        name=path.stem,
        path=path,
        sql=text,
        deps=tuple(sorted(set(deps))),
        partitioned_by=partitioned_by,
        unique_key=_list(settings.get("unique_key")),
        diststyle=settings.get("diststyle", "auto").lower(),
        distkey=settings.get("distkey") or None,
        sortkey=_list(settings.get("sortkey")),
        description=settings.get("description", ""),
    )


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _list(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else ()


def build_mart(
    spec: MartSpec, day: date | None, lake: Storage, warehouse: WarehouseConnect
) -> MartBuild:
    """Compute one mart (one day of it when daily) and write it to the lake and the warehouse."""
    build = MartBuild()
    with tempfile.TemporaryDirectory(prefix="mart-") as scratch:
        con = duckdb.connect()
        for layer, table in spec.deps:
            paths = _input_files(lake, layer, table, day, Path(scratch))
            if not paths:
                build.missing_inputs.append(f"{layer}.{table}")
                continue
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{layer}"')
            hive = "true" if layer == "cleaned" else "false"
            files = ", ".join(_sql_string(str(p)) for p in paths)
            con.execute(
                f'CREATE VIEW "{layer}"."{table}" AS SELECT * FROM read_parquet([{files}], '
                f"union_by_name=true, hive_partitioning={hive})"
            )
        result = None if build.missing_inputs else con.sql(spec.sql).to_arrow_table()
        con.close()
    prefix = f"marts/{spec.name}/" + (f"dt={day}/" if day else "")
    for stale in list(lake.list(prefix)):
        lake.delete(stale.key)
    if result is not None and spec.partitioned_by == "day" and "dt" not in result.column_names:
        raise MartDefinitionError(f"{spec.path.name}: a daily mart must select a dt column")
    if result is not None and result.num_rows:
        key = f"{prefix}{spec.name}-0000.parquet"
        lake.write(key, parquet_bytes(result))
        build.files.append(key)
        build.rows = result.num_rows
        build.columns = [(f.name, str(f.type)) for f in result.schema]
    with warehouse() as con:
        load_into_warehouse(con, spec, day, result)
    return build


def _input_files(
    lake: Storage, layer: str, table: str, day: date | None, scratch: Path
) -> list[Path]:
    prefix = f"{layer}/{table}/" + (f"dt={day}/" if day else "")
    keys = [o.key for o in lake.list(prefix) if o.key.endswith(".parquet")]
    if isinstance(lake, LocalStorage):
        return [lake.path(k) for k in keys]
    local = []  # DuckDB has no S3 reader offline here: fetch the day's files with boto3
    for key in keys:
        target = scratch / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(lake.read(key))
        local.append(target)
    return local


def load_into_warehouse(
    con: duckdb.DuckDBPyConnection, spec: MartSpec, day: date | None, result: pa.Table | None
) -> None:
    """Replace the mart's day (or the whole table) in the DuckDB warehouse, in one transaction."""
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    table = f'marts."{spec.name}"'
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema='marts' AND table_name=?",
        [spec.name],
    ).fetchall()[0][0]
    con.execute("BEGIN")
    try:
        if result is not None:
            con.register("mart_result", result)
        if not exists and result is not None:
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM mart_result")
        elif exists:
            if day is not None and spec.partitioned_by == "day":
                con.execute(f"DELETE FROM {table} WHERE dt = ?", [day])
            else:
                con.execute(f"DELETE FROM {table}")
            if result is not None and result.num_rows:
                _add_new_columns(con, table, spec.name)
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM mart_result")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        if result is not None:
            con.unregister("mart_result")


def _add_new_columns(con: duckdb.DuckDBPyConnection, table: str, name: str) -> None:
    existing = {
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema='marts' AND table_name=?",
            [name],
        ).fetchall()
    }
    for column, duck_type, *_ in con.execute("DESCRIBE SELECT * FROM mart_result").fetchall():
        if column not in existing:
            con.execute(f'ALTER TABLE {table} ADD COLUMN "{column}" {duck_type}')


@contextmanager
def warehouse_connection(
    path: str, attempts: int = 30, wait_s: float = 1.0
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse file; DuckDB allows one writer process, so wait for another to let go."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(attempts):
        try:
            con = duckdb.connect(path)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or attempt == attempts - 1:
                raise
            time.sleep(wait_s)
    try:
        yield con
    finally:
        con.close()
