"""Dagster's alembic migration scripts, loaded once a process instead of once a check.

Dagster's SQL storages build a new alembic `ScriptDirectory` for every revision check and
every stamp (`dagster._core.storage.sql.check_alembic_revision`, alembic's `stamp`), and
each one reads and imports Dagster's ~90 migration scripts again to find the head: ~45 ms
of CPU each, 7 times for a fresh instance folder (run, event log and schedule storages,
checked then stamped, and index.db), and once more for every new run's event file.

`keep_dagster_scripts()` makes `ScriptDirectory.from_config` give the same object again
for the same settings of Dagster's own script location: the scripts are files of the
installed Dagster package, the same for the whole process, and a `ScriptDirectory` holds
no connection (`run_env` loads `env.py` anew each time; stamps and checks read the
revision map only). Other script locations (an operator's, a test's) are built as before.
"""

from __future__ import annotations

import threading
from typing import Any

from alembic.config import Config
from alembic.script import ScriptDirectory
from dagster._core.storage.sql import ALEMBIC_SCRIPTS_LOCATION

# what ScriptDirectory.from_config reads from a Config, besides its messaging options
_OPTIONS = (
    "script_location",
    "truncate_slug_length",
    "file_template",
    "sourceless",
    "output_encoding",
    "version_locations",
    "timezone",
    "recursive_version_locations",
    "prepend_sys_path",
)

_KEPT: dict[tuple[Any, ...], ScriptDirectory] = {}
_LOCK = threading.Lock()
_build = ScriptDirectory.from_config  # alembic's own, bound to the class


def _settings(config: Config) -> tuple[Any, ...]:
    return (*(config.get_alembic_option(o) for o in _OPTIONS), repr(config.get_hooks_list()))


def _kept_or_built(cls: type[ScriptDirectory], config: Config) -> ScriptDirectory:
    if cls is not ScriptDirectory or config.get_alembic_option("script_location") != (
        ALEMBIC_SCRIPTS_LOCATION
    ):
        return _build.__func__(cls, config)  # type: ignore[attr-defined]
    key = _settings(config)
    with _LOCK:
        scripts = _KEPT.get(key)
        if scripts is None:
            scripts = _KEPT[key] = _build(config)
        return scripts


def keep_dagster_scripts() -> None:
    """Load Dagster's migration scripts once for this process (see the module doc)."""
    ScriptDirectory.from_config = classmethod(_kept_or_built)  # type: ignore[method-assign, assignment]
