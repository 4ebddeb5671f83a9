"""The forkserver run workers are forked from, preloaded with the code location, and its
replacement when the project's code or environment changes (issue 15).

The server imports WARM_MODULES and then the code location (orchestration/warm_location.py)
once, so a forked worker starts with the definitions built. It then holds the code and the
settings of its start: the code state (orchestration/code_state.py) is taken before it
starts and compared at each fork; on a change the server is retired and the next fork
starts a new one, so a code change or a new environment applies to the next run, as with
Dagster's own launcher.

A retired server takes no more forks but is not stopped: each of its workers holds the
write end of its "alive" pipe, so it exits when its last worker does and until then reports
their exit codes to the launcher's Process objects as before. (multiprocessing's own
`_stop()` would wait for those workers.) The launcher's process reaps it.

multiprocessing keeps one forkserver a process; so does this module (SERVER).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from multiprocessing import forkserver, util
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from orchestration.code_state import code_state

# What the forkserver imports once: Dagster with the run worker's entry point and its
# SQLite storages, the heavy libraries every ingest run imports, then the code location.
WARM_MODULES = [
    "dagster._cli.api",
    "dagster._grpc.impl",
    "dagster._core.storage.runs.sqlite",
    "dagster._core.storage.event_log.sqlite",
    "dagster._core.storage.schedules.sqlite",
    "dagster_aws.s3",
    "dagster_duckdb",
    "duckdb",
    "pyarrow.compute",
    "pyarrow.parquet",
    "sqlglot",
    "pyiceberg.table",
    "pyiceberg.catalog.sql",
]
PRELOAD = [*WARM_MODULES, "orchestration.warm_location"]
PROJECT_ROOT = Path(__file__).resolve().parents[1]  # where the forkserver imports it from


class WarmServer:
    """Forks processes from a forkserver whose code location matches the project's now."""

    def __init__(self, root: Path, preload: Sequence[str]) -> None:
        self._root = root
        self._preload = list(preload)
        self._state: Any = None  # of the running server; None: none started by us
        self._retired: list[int] = []
        self._lock = threading.Lock()  # the run queue launches from several threads

    def start(
        self, target: Callable[..., Any], args: tuple, name: str, environ: Mapping[str, str]
    ) -> tuple[BaseProcess, bool]:
        """A started process running `target(*args)`, forked from a server built with
        `environ` (the launcher's environment now); whether that server had to be replaced."""
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(self._preload)
        with self._lock:
            self._reap()
            state = code_state(self._root, environ)
            replaced = False
            if state != self._state:  # also a server someone else started before our first
                replaced = self._retire()
                self._state = state  # taken before the server starts: a later edit is seen
            proc = ctx.Process(target=target, args=args, name=name)
            proc.start()
        return proc, replaced

    def server_pid(self) -> int | None:
        return forkserver._forkserver._forkserver_pid

    def _retire(self) -> bool:
        """Takes the running server out of use without waiting for its workers; whether
        there was one."""
        server = forkserver._forkserver
        with server._lock:
            pid, alive, address = (
                server._forkserver_pid,
                server._forkserver_alive_fd,
                server._forkserver_address,
            )
            server._forkserver_pid = server._forkserver_alive_fd = None
            server._forkserver_address = None
        if pid is None:
            return False
        os.close(alive)
        if address and not util.is_abstract_socket_namespace(address):
            with contextlib.suppress(OSError):
                os.unlink(address)
        self._retired.append(pid)
        return True

    def _reap(self) -> None:
        for pid in list(self._retired):
            try:
                done, _status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self._retired.remove(pid)


SERVER = WarmServer(PROJECT_ROOT, PRELOAD)
