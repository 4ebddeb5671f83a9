"""Where everything lands under LAKE_URI: the one module that spells a lake path.

Names that come from data or settings (stream, mart, database, table) arrive here already
validated (lake.streams, lake.marts, lake.settings); file names (output names, claim
names) are built safe by their owners (lake.ledger, lake.alerts). Days are event dates.

| function | path |
|---|---|
| `catalog_table` | `catalog/<database>/<table>.json` |
| `catalog_version` | `catalog/<database>/<table>/versions/<n>.json` |
| `catalog_partition` | `catalog/<database>/<table>/partitions/<Y-M-D-H>.json` |
| `crawl_record` | `catalog/<database>/<table>/crawled/<Y-M-D-H>.json` (the objects a partition's stats count) |
| `cleaned_file` | `cleaned/<stream>/dt=YYYY-MM-DD/<output name>` |
| `shared_file` | `cleaned/<stream>/dt=YYYY-MM-DD/<YYYYMMDDTHH>-pass-<run token>-p<n>.parquet` (small objects of one pass, with tables; see lake.ledger) |
| `quarantine_file` | `quarantine/<stream>/dt=YYYY-MM-DD/<output name>` |
| `mart_file` | `marts/<mart>/dt=YYYY-MM-DD/<mart>-<build token>.parquet` (no `dt=` when not daily) |
| `compacted_file` | `<layer>/<table>/dt=YYYY-MM-DD/compacted-<token>.parquet` (table maintenance) |
| `redshift_ddl` | `redshift/<mart>/create_table.sql` |
| `redshift_manifest` | `redshift/<mart>/dt=YYYY-MM-DD/manifest.json` |
| `redshift_load_script` | `redshift/<mart>/dt=YYYY-MM-DD/load.sql` |
| `ledger_manifest` | `_state/cleaned/<stream>/<output name>.v<version>.json` |
| `legacy_ledger_manifest` | `_state/cleaned/<stream>/<output name>.json` (read, never written) |
| `hour_totals_doc` | `_state/totals/<stream>/<YYYYMMDDTHH>.json` |
| `dedup_keys_file` | `_state/keys/<stream>/dt=YYYY-MM-DD/<YYYYMMDDTHH>.parquet` |
| `dedup_keys_compacted` | `_state/keys/<stream>/dt=YYYY-MM-DD/compacted.parquet` |
| `dedup_keys_index` | `_state/keys/<stream>/dt=YYYY-MM-DD/compacted.hi` (the compacted file's probe index) |
| `dedup_run_keys_file` | `_state/keys/<stream>/dt=YYYY-MM-DD/<YYYYMMDDTHH>/<stamp>.parquet` (one run's keys, until folded) |
| `chunk_handoff_folder` | `_state/chunks/<stream>/<run token>/<YYYYMMDDTHH>/` (a parallel run's chunk handed back by its worker, until the run ends) |
| `retype_marker` | `_state/retyped/<stream>.json` |
| `redshift_state` | `_state/redshift/<mart>.json` |
| `alert_claim` | `_state/alerts/<mart>/<claim name>.json` |
| `DEMO_SEED_MARKER` | `_state/demo_seed.json` |

The `*_folder` functions give the prefixes to list (each ends with `/`).
"""

from __future__ import annotations

import re
from datetime import date, datetime

CLEANED = "cleaned"
QUARANTINE = "quarantine"
LEDGER_LAYERS = (CLEANED, QUARANTINE)  # written by cleaning runs, committed by manifests
DEMO_SEED_MARKER = "_state/demo_seed.json"

_FILE_DAY = re.compile(r"/dt=(\d{4}-\d{2}-\d{2})/[^/]+$")
_TOKEN = re.compile(r"[0-9a-f]{1,32}")
_STAMP = re.compile(r"[0-9]{20}-[0-9a-f]{12}")
_RUN_TOKEN = re.compile(r"[0-9a-f]{12}")
_SHARED_NAME = re.compile(r"/dt=\d{4}-\d{2}-\d{2}/\d{8}T\d{2}-pass-[0-9a-f]{12}-p\d+\.parquet$")
_CLEANED_DAY = re.compile(r"cleaned/[^/]+/dt=(\d{4}-\d{2}-\d{2})/")


def _dt(day: date) -> str:
    return f"dt={day:%Y-%m-%d}"


def catalog_table(database: str, table: str) -> str:
    return f"catalog/{database}/{table}.json"


def catalog_version(database: str, table: str, version: int) -> str:
    return f"catalog/{database}/{table}/versions/{version}.json"


def catalog_partition(database: str, table: str, values: list[str]) -> str:
    """A crawled partition, named by its values joined with `-` (`2026-11-21-08`)."""
    return f"catalog/{database}/{table}/partitions/{'-'.join(values)}.json"


def crawl_record(database: str, table: str, values: list[str]) -> str:
    """The objects a crawled partition's stats count (lake.crawler), named as the partition."""
    return f"catalog/{database}/{table}/crawled/{'-'.join(values)}.json"


def layer_folder(layer: str, stream: str) -> str:
    """`cleaned/<stream>/` or `quarantine/<stream>/`."""
    if layer not in LEDGER_LAYERS:
        raise ValueError(f"not a cleaning layer: {layer!r}")
    return f"{layer}/{stream}/"


def layer_day_folder(layer: str, stream: str, day: date) -> str:
    return f"{layer_folder(layer, stream)}{_dt(day)}/"


def cleaned_file(stream: str, day: date, name: str) -> str:
    return f"{layer_day_folder(CLEANED, stream, day)}{name}"


def shared_file(stream: str, day: date, hour: datetime, token: str, n: int) -> str:
    """A cleaned file holding several objects' rows (pass `n` of run `token`, whose first
    object arrived in `hour`): never an output name, which ends in 16 hex digits."""
    if not _RUN_TOKEN.fullmatch(token) or n < 0:
        raise ValueError(f"not a run token and pass number: {token!r}, {n!r}")
    return f"{layer_day_folder(CLEANED, stream, day)}{hour:%Y%m%dT%H}-pass-{token}-p{n}.parquet"


def is_shared_file(key: str) -> bool:
    """Whether `key` is a cleaned file named by shared_file."""
    return key.startswith(f"{CLEANED}/") and _SHARED_NAME.search(key) is not None


def quarantine_file(stream: str, day: date, name: str) -> str:
    return f"{layer_day_folder(QUARANTINE, stream, day)}{name}"


def is_cleaned_file(key: str) -> bool:
    return key.startswith(f"{CLEANED}/")


def file_day(key: str) -> date | None:
    """The day of a file's `dt=` folder (None when it is in none)."""
    match = _FILE_DAY.search(key)
    return date.fromisoformat(match[1]) if match else None


def cleaned_file_day(key: str) -> date | None:
    """The event date of a cleaned file's key (None for any other key)."""
    match = _CLEANED_DAY.match(key)
    return date.fromisoformat(match[1]) if match else None


def mart_folder(mart: str) -> str:
    return f"marts/{mart}/"


def mart_day_folder(mart: str, day: date) -> str:
    return f"{mart_folder(mart)}{_dt(day)}/"


def mart_partition_folder(mart: str, day: date | None) -> str:
    """A mart partition's folder (`day` None: the mart is not partitioned by day)."""
    return mart_day_folder(mart, day) if day else mart_folder(mart)


def mart_file(mart: str, day: date | None, token: str) -> str:
    """A build's file of a mart partition: each build a new name (`token`: [0-9a-f]), so a
    file an Iceberg snapshot references is never overwritten in place."""
    if not _TOKEN.fullmatch(token):
        raise ValueError(f"not a build token: {token!r}")
    return f"{mart_partition_folder(mart, day)}{mart}-{token}.parquet"


def redshift_folder(mart: str) -> str:
    return f"redshift/{mart}/"


def redshift_ddl(mart: str) -> str:
    return f"{redshift_folder(mart)}create_table.sql"


def _redshift_partition(mart: str, day: date | None) -> str:
    return f"{redshift_folder(mart)}{_dt(day)}/" if day else redshift_folder(mart)


def redshift_manifest(mart: str, day: date | None) -> str:
    return f"{_redshift_partition(mart, day)}manifest.json"


def redshift_load_script(mart: str, day: date | None) -> str:
    return f"{_redshift_partition(mart, day)}load.sql"


def ledger_folder(stream: str) -> str:
    """Where the cleaning ledger keeps a stream's per-object manifests."""
    return f"_state/cleaned/{stream}/"


def ledger_hour_prefix(stream: str, hour: datetime) -> str:
    """The manifests of one arrival hour (output names start with the hour)."""
    return f"{ledger_folder(stream)}{hour:%Y%m%dT%H}-"


def ledger_manifest(stream: str, name: str, version: str) -> str:
    return f"{ledger_folder(stream)}{name}.v{version}.json"


def legacy_ledger_manifest(stream: str, name: str) -> str:
    return f"{ledger_folder(stream)}{name}.json"


def hour_totals_doc(stream: str, hour: datetime) -> str:
    """An arrival hour's running totals (lake.hour_totals): one document, compare-and-swap."""
    return f"_state/totals/{stream}/{hour:%Y%m%dT%H}.json"


def pending_commits_folder(stream: str) -> str:
    """Markers of cleaning runs between their Iceberg commit and their ledger writes."""
    return f"_state/commits/{stream}/"


def pending_commit(stream: str, token: str) -> str:
    return f"{pending_commits_folder(stream)}{token}.json"


def chunk_handoffs_folder(stream: str, token: str) -> str:
    """The chunks a parallel cleaning run's workers handed back (lake.cleaning.handoff)."""
    if not _TOKEN.fullmatch(token):
        raise ValueError(f"not a run token: {token!r}")
    return f"_state/chunks/{stream}/{token}/"


def chunk_handoff_folder(stream: str, token: str, first_hour: datetime) -> str:
    """One chunk's handoff, named by its first hour (a run's chunks never share one)."""
    return f"{chunk_handoffs_folder(stream, token)}{first_hour:%Y%m%dT%H}/"


def dedup_keys_folder(stream: str, day: date) -> str:
    return f"_state/keys/{stream}/{_dt(day)}/"


def dedup_keys_file(stream: str, day: date, hour: datetime) -> str:
    """The keys one arrival hour's runs wrote for one event date."""
    return f"{dedup_keys_folder(stream, day)}{hour:%Y%m%dT%H}.parquet"


def dedup_run_keys_folder(stream: str, day: date, hour: datetime) -> str:
    """The keys single runs of one arrival hour wrote for one event date, not yet folded
    into its hour file (lake.cleaning.run_keys)."""
    return f"{dedup_keys_folder(stream, day)}{hour:%Y%m%dT%H}/"


def dedup_run_keys_file(stream: str, day: date, hour: datetime, stamp: str) -> str:
    if not _STAMP.fullmatch(stamp):
        raise ValueError(f"not a run stamp: {stamp!r}")
    return f"{dedup_run_keys_folder(stream, day, hour)}{stamp}.parquet"


def dedup_keys_compacted(stream: str, day: date) -> str:
    """One event date's hour files merged into one file sorted by key (lake.cleaning.key_files)."""
    return f"{dedup_keys_folder(stream, day)}compacted.parquet"


def dedup_keys_index(stream: str, day: date) -> str:
    """The compacted file's probe index (lake.cleaning.key_index): its keys' `hi`, bucketed."""
    return f"{dedup_keys_folder(stream, day)}compacted.hi"


def retype_marker(stream: str) -> str:
    return f"_state/retyped/{stream}.json"


def redshift_state(mart: str) -> str:
    return f"_state/redshift/{mart}.json"


def alert_claim(mart: str, name: str) -> str:
    return f"_state/alerts/{mart}/{name}.json"


TABLE_LAYERS = (CLEANED, QUARANTINE, "marts")  # the layers kept as Iceberg tables


def table_folder(layer: str, name: str) -> str:
    """`<layer>/<stream or mart>/`: an Iceberg table's location (data and `metadata/`)."""
    if layer not in TABLE_LAYERS:
        raise ValueError(f"not a table layer: {layer!r}")
    return f"{layer}/{name}/"


def compacted_file(layer: str, name: str, day: date, token: str) -> str:
    """A file compaction writes: `<layer>/<name>/dt=YYYY-MM-DD/compacted-<token>.parquet`."""
    return f"{table_folder(layer, name)}{_dt(day)}/compacted-{token}.parquet"
