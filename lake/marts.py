"""Mart definitions: SQL files, a header of settings, then one DuckDB SELECT.

    -- partitioned_by: day          (day | none)
    -- unique_key: dt, cow_id
    -- diststyle: key              (Redshift: auto | even | key | all)
    -- distkey: cow_id
    -- sortkey: dt, cow_id
    -- lookback_days: 7            (a daily mart also reads the 7 days before its day)
    -- alerts: true                (every row is an alert: notified once, see lake.alerts)
    -- not_null: dt, cow_id        (columns that never hold NULL: an asset check)
    -- owner: team:dairy-data      (Dagster owner: an e-mail address or team:<name>)
    -- pii: true                   (rows carry personal values, hashed or not)
    -- description: free text
    SELECT ... FROM cleaned.robot_telemetry ...

Dependencies are read from the SQL with sqlglot, so adding a file adds a mart with its
lineage; a file that does not parse or names an unknown table fails at load time. Columns the
header names (unique_key, not_null, distkey, sortkey) must be columns the SELECT
produces. A daily
mart reads its day's partitions (cleaned/<stream>/dt=<day>/, marts/<mart>/dt=<day>/), must
select a `dt` column, and keeps only the rows of its day. Building is lake.mart_build.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import sqlglot
from sqlglot import exp

from lake.settings import REPO_ROOT
from lake.streams import PLAIN_NAME_RULE, is_plain_name

MARTS_DIR = REPO_ROOT / "sql" / "marts"
LAYERS = ("cleaned", "marts")
_HEADER = re.compile(r"^--\s*([a-z_]+)\s*:\s*(.*?)\s*$")
_SETTINGS = (
    "partitioned_by",
    "unique_key",
    "diststyle",
    "distkey",
    "sortkey",
    "lookback_days",
    "alerts",
    "not_null",
    "owner",
    "pii",
    "description",
)
_OWNER = re.compile(r"^(team:[A-Za-z0-9_.-]+|[^@\s]+@[^@\s]+\.[^@\s]+)$")  # Dagster's forms


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
    lookback_days: int = 0
    alerts: bool = False
    not_null: tuple[str, ...] = ()
    owner: str | None = None
    pii: bool = False
    description: str = ""
    names_used: tuple[str, ...] = ()  # every column name the SQL refers to
    outputs: tuple[str, ...] = ()  # the SELECT's column names, in order
    # cleaned streams read; through other marts too once load_marts has seen them all
    streams: frozenset[str] = field(default_factory=frozenset)

    @property
    def code_version(self) -> str:
        """A hash of the file: a changed SQL file makes every built partition stale."""
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]


def load_marts(stream_names: set[str], folder: Path = MARTS_DIR) -> dict[str, MartSpec]:
    """Parse every `*.sql` mart; raise MartDefinitionError naming the file and the reason."""
    files = sorted(folder.glob("*.sql"))
    names = {f.stem for f in files}
    marts = {}
    for path in files:
        marts[path.stem] = parse_mart(path, stream_names, names)
    return {name: replace(spec, streams=_streams_read(name, marts)) for name, spec in marts.items()}


def _streams_read(
    name: str, marts: dict[str, MartSpec], seen: frozenset[str] = frozenset()
) -> frozenset[str]:
    """The cleaned streams a mart reads, directly or through the marts it reads."""
    if name in seen:
        raise MartDefinitionError(f"{marts[name].path.name}: marts read each other in a cycle")
    streams: set[str] = set()
    for layer, table in marts[name].deps:
        streams |= {table} if layer == "cleaned" else _streams_read(table, marts, seen | {name})
    return frozenset(streams)


def parse_mart(path: Path, stream_names: set[str], mart_names: set[str]) -> MartSpec:
    if not is_plain_name(path.stem):
        raise MartDefinitionError(
            f"{path.name!r}: the file name is the mart's name; {PLAIN_NAME_RULE}"
        )
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
    diststyle = settings.get("diststyle", "auto").lower()
    if diststyle not in ("auto", "even", "key", "all"):
        raise MartDefinitionError(f"{path.name}: diststyle must be auto, even, key or all")
    lookback = settings.get("lookback_days", "0")
    if not lookback.isdigit() or int(lookback) > 366:
        raise MartDefinitionError(f"{path.name}: lookback_days must be a whole number 0..366")
    alerts = _flag(path, settings, "alerts")
    owner = settings.get("owner") or None
    if owner is not None and not _OWNER.match(owner):
        raise MartDefinitionError(f"{path.name}: owner must be an e-mail address or team:<name>")
    outputs = tuple(query.named_selects)
    keyed = {
        "unique_key": _list(settings.get("unique_key")),
        "not_null": _list(settings.get("not_null")),
        "sortkey": _list(settings.get("sortkey")),
        "distkey": _list(settings.get("distkey")),
    }
    if not query.is_star:  # a SELECT * names its columns only when it runs
        for setting, names in keyed.items():
            if unknown := [n for n in names if n not in outputs]:
                raise MartDefinitionError(
                    f"{path.name}: {setting} names {', '.join(unknown)}, not a column the "
                    f"SELECT produces ({', '.join(outputs)})"
                )
    return MartSpec(
        name=path.stem,
        path=path,
        sql=text,
        deps=tuple(sorted(set(deps))),
        partitioned_by=partitioned_by,
        unique_key=keyed["unique_key"],
        diststyle=diststyle,
        distkey=settings.get("distkey") or None,
        sortkey=_list(settings.get("sortkey")),
        lookback_days=int(lookback),
        alerts=alerts,
        not_null=keyed["not_null"],
        owner=owner,
        pii=_flag(path, settings, "pii"),
        description=settings.get("description", ""),
        names_used=tuple(sorted({c.name for c in query.find_all(exp.Column)})),
        outputs=outputs,
        streams=frozenset(table for layer, table in deps if layer == "cleaned"),
    )


def _flag(path: Path, settings: dict[str, str], name: str) -> bool:
    value = settings.get(name, "false").lower()
    if value not in ("true", "false"):
        raise MartDefinitionError(f"{path.name}: {name} must be true or false")
    return value == "true"


def _list(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else ()
