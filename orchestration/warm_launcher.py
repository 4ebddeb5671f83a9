"""A run launcher whose run workers are forked from a pre-loaded server (issue 15, freshness).

Dagster's DefaultRunLauncher asks the code server to start each run, and the code server
spawns a new interpreter that imports Dagster, its storages, DuckDB, pyarrow, pyiceberg...
(~4.5 s a launch, ~10 s of CPU a run here: bench/README.md, "launch"). This launcher forks
each run worker from a `forkserver` that imported Dagster, the heavy libraries and the
project's code location once (orchestration/warm_server.py; started lazily in the process
that launches runs: the daemon's run queue, or the webserver), and the worker runs the run
as `dagster api execute_run` does: same events, status transitions, compute logs. The
server is replaced at the next launch after a change of the project's files or of the
environment, so a code change applies to the next run.

The worker's pid, start time and host are stored on the run (WORKER_TAG; by the worker
before the run starts, and by the launcher once the fork returns), so any process
of the instance can terminate it (the UI's Terminate button in the webserver,
orchestration/graceful_stop.py in the supervisor: SIGINT, as the code server sends it, so
the run ends CANCELED with its step interrupted) and run monitoring can fail (and
run_retries relaunch) a run whose worker died.

Runs are handed to Dagster's DefaultRunLauncher when forking cannot be right: RUN_WORKERS
set to `spawn` (the default is `fork`), a code location whose Python is not this
interpreter, a run without a loadable Python origin, a platform without forkserver or
/proc, or a fork that failed.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import DagsterRun
from dagster._core.launcher import (
    CheckRunHealthResult,
    DefaultRunLauncher,
    LaunchRunContext,
    RunLauncher,
    WorkerStatus,
)
from dagster._core.storage.tags import HIDDEN_TAG_PREFIX
from dagster._serdes import ConfigurableClass, ConfigurableClassData, serialize_value

from orchestration.warm_server import SERVER
from orchestration.worker_process import WorkerProcess, can_identify_processes

# hidden in the UI as Dagster's own launchers hide theirs (the ECS launcher's too): the
# pid is in the run's "Started process for run (pid: N)" event
WORKER_TAG = f"{HIDDEN_TAG_PREFIX}firehose_lake/run_worker"
RUN_WORKERS_ENV = "RUN_WORKERS"
MODES = ("fork", "spawn")


def run_worker(run_id: str, instance_ref: str, environ: Mapping[str, str]) -> None:
    """The forked worker: the body of `dagster api execute_run` for one run."""
    from dagster._cli.api import _execute_run_command_body
    from dagster._cli.utils import get_instance_for_cli
    from dagster._core.instance.ref import InstanceRef
    from dagster._serdes import deserialize_value
    from dagster._utils.interrupts import capture_interrupts

    with capture_interrupts():
        # the launcher's environment now, not the forkserver's at its start
        os.environ.clear()
        os.environ.update(environ)
        ref = deserialize_value(instance_ref, InstanceRef)
        with get_instance_for_cli(instance_ref=ref) as instance:
            _name_this_worker(instance, run_id)
            _execute_run_command_body(run_id, instance, lambda _event: None, False)


def _name_this_worker(instance: Any, run_id: str) -> None:
    """Stores this process on the run before the run starts. The launcher stores it too,
    after the fork returns; under load that came after the step had started, and a
    terminate in between found no worker to interrupt (the run went on to its end)."""
    worker = WorkerProcess.of(os.getpid())
    if worker is not None:
        instance.add_run_tags(run_id, {WORKER_TAG: worker.to_tag()})


def workers_mode(environ: Mapping[str, str]) -> str:
    """RUN_WORKERS: `fork` (unset or empty) or `spawn`; anything else is Dagster's `spawn`."""
    mode = (environ.get(RUN_WORKERS_ENV) or "fork").strip().lower()
    return mode if mode in MODES else "spawn"


def same_interpreter(executable: str | None) -> bool:
    """Whether `executable` is this interpreter: same file in the same bin folder (two
    virtual environments' pythons are links to one file, so the folder must match too)."""
    if not executable:
        return False
    theirs, ours = Path(os.path.abspath(executable)), Path(os.path.abspath(sys.executable))
    return theirs.parent == ours.parent and theirs.resolve() == ours.resolve()


def fork_refusal(run: DagsterRun, environ: Mapping[str, str]) -> str | None:
    """Why this run must go to Dagster's own launcher; None when it can be forked."""
    if workers_mode(environ) != "fork":
        return f"{RUN_WORKERS_ENV}={environ.get(RUN_WORKERS_ENV)!r}"
    if "forkserver" not in multiprocessing.get_all_start_methods() or not can_identify_processes():
        return "this platform has no forkserver or no /proc"
    origin = run.job_code_origin
    if origin is None:
        return "the run has no Python origin"
    if not same_interpreter(origin.executable_path):
        return f"its code location runs {origin.executable_path}, not {sys.executable}"
    return None


class WarmRunLauncher(RunLauncher, ConfigurableClass):
    """Forks run workers from a pre-loaded forkserver; see the module doc."""

    def __init__(self, inst_data: ConfigurableClassData | None = None) -> None:
        self._inst_data = inst_data
        self._default = DefaultRunLauncher()
        self._workers: dict[str, multiprocessing.process.BaseProcess] = {}
        self._lock = threading.Lock()  # the run queue launches from several threads
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict:
        return {}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> WarmRunLauncher:
        return cls(inst_data=inst_data)

    def register_instance(self, instance: Any) -> None:
        super().register_instance(instance)
        self._default.register_instance(instance)

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        refusal = fork_refusal(run, os.environ)
        if refusal is None:
            try:
                pid = self._fork(run)
            except Exception as error:  # noqa: BLE001 - the run still starts, the Dagster way
                refusal = f"the fork failed: {error!r}"
            else:
                self._tag(run, pid)
                return
        self._instance.report_engine_event(
            f"Run worker started by Dagster's default launcher: {refusal}.", run, cls=type(self)
        )
        self._default.launch_run(context)

    def _fork(self, run: DagsterRun) -> int:
        """Starts the run's worker; its pid."""
        ref = serialize_value(self._instance.get_ref())
        environ = dict(os.environ)
        with self._lock:
            self._forget_ended()
        proc, replaced = SERVER.start(
            run_worker, (run.run_id, ref, environ), f"dagster-run-{run.run_id}", environ
        )
        with self._lock:
            self._workers[run.run_id] = proc
        if replaced:
            self._instance.report_engine_event(
                "Run worker forked from a new code location server: the project's files or "
                "the environment changed since the last run.",
                run,
                cls=type(self),
            )
        return proc.pid

    def _tag(self, run: DagsterRun, pid: int) -> None:
        worker = WorkerProcess.of(pid)
        if worker is not None:  # None: it already ended, and its events say how
            self._instance.add_run_tags(run.run_id, {WORKER_TAG: worker.to_tag()})

    def _forget_ended(self) -> None:
        for run_id, proc in list(self._workers.items()):
            if not proc.is_alive():
                proc.close()
                del self._workers[run_id]

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if not run or run.is_finished:
            return False
        worker = WorkerProcess.from_tag(run.tags.get(WORKER_TAG))
        if worker is None:
            return self._default.terminate(run_id)
        self._instance.report_run_canceling(run)
        if not worker.on_this_host():
            self._instance.report_engine_event(
                f"Run worker pid {worker.pid} is on host {worker.host!r}: not reachable from here.",
                run,
                cls=type(self),
            )
            return False
        if worker.interrupt():
            return True
        # nothing will end this run any more: its worker is gone
        self._instance.report_run_canceled(run, f"Run worker pid {worker.pid} had already exited.")
        return False

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        """From the worker's pid and start time. A run of the default launcher (no tag) or
        one on another host is reported RUNNING: unchecked, as without this launcher."""
        worker = WorkerProcess.from_tag(run.tags.get(WORKER_TAG))
        if worker is None or not worker.on_this_host():
            return CheckRunHealthResult(WorkerStatus.RUNNING, "not a forked worker of this host")
        if worker.alive():
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(worker.pid))
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"Run worker pid {worker.pid} exited without ending the run.",
            run_worker_id=str(worker.pid),
        )

    def join(self, timeout: int = 30) -> None:
        deadline = time.monotonic() + timeout
        for proc in list(self._workers.values()):
            proc.join(max(0.0, deadline - time.monotonic()))
        self._default.join(timeout)
