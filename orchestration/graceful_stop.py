"""Run `dagster dev` so that Ctrl-C (SIGINT) or SIGTERM stops it without failing runs.

`dagster dev` shares the terminal's process group with its run workers, so a Ctrl-C
reaches every worker at once and each in-flight run ends as FAILURE. Here `dagster dev`
runs in its own session (the terminal's signals reach only this supervisor), and a stop:

1. pauses (SIGSTOP) the `dagster dev` daemon: no sensor, schedule, backfill or run queue
   launches anything more, while the code server keeps serving the runs in flight;
2. waits up to `grace_s` for the in-flight runs to finish by themselves;
3. cancels the runs still in flight through the instance's run coordinator (the code
   server stops them at their next step boundary: CANCELED, not FAILURE) and waits for
   them to end, up to `cancel_s`; a run still in flight then is marked CANCELED, as the
   UI's force termination does;
4. ends the paused daemon (SIGKILL: resumed, its run queue could launch one more run) and
   interrupts `dagster dev`, which shuts down its webserver and code server as on a Ctrl-C
   of its own; what is left of its session is terminated after EXIT_S.

A second Ctrl-C skips the wait of step 2. Queued runs stay queued for the next start.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

# Dagster is imported where a stop needs it, not here: `python -m orchestration.launch asset
# materialize` imports this module and then replaces itself with `dagster`, which imports
# Dagster again (importing it here cost the CLI ~1.7 s CPU; bench/README.md, "clistart")
if TYPE_CHECKING:
    from dagster import DagsterInstance, RunsFilter

POLL_S = 1.0
EXIT_S = 30.0  # dagster dev waits up to 60 s per service, but with no runs left it takes seconds


class _Signals:
    """Counts stop signals; the handler does nothing else (it runs between bytecodes)."""

    def __init__(self) -> None:
        self.count = 0
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._received)

    def _received(self, *_: object) -> None:
        self.count += 1

    def wait(self, beyond: int, timeout: float) -> bool:
        """True once more than `beyond` signals arrived, False after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.count <= beyond:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True


def supervise(command: Sequence[str], env: dict[str, str], grace_s: float, cancel_s: float) -> int:
    """Run `command` (`dagster dev ...`) until it exits or a stop signal; its exit status."""
    signals = _Signals()
    proc = subprocess.Popen(command, env=env, start_new_session=True)
    while proc.poll() is None:
        if signals.wait(beyond=0, timeout=POLL_S):
            again = functools.partial(signals.wait, 1)
            stop(proc, Path(env["DAGSTER_HOME"]), grace_s, cancel_s, hurry=again)
            break
    return proc.wait()


def stop(
    proc: subprocess.Popen[bytes],
    home: Path,
    grace_s: float,
    cancel_s: float,
    hurry: Callable[[float], bool],
) -> None:
    """Steps 1-4 of the module doc. `hurry(s)` waits up to s seconds for a second signal."""
    daemon = daemon_pid(proc.pid)
    if daemon is not None:
        os.kill(daemon, signal.SIGSTOP)
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(home)) as instance:
        running = in_flight(instance)
        if running:
            _say(
                f"stopping: no new runs; waiting up to {grace_s:g}s for {len(running)} run(s) "
                "in flight (Ctrl-C again to cancel them now)"
            )
            running = wait_for_runs(instance, grace_s, hurry)
        if running:
            _say(f"canceling {len(running)} run(s): {', '.join(running)}")
            for run_id in cancel_runs(instance, cancel_s):
                _say(f"run {run_id} did not stop within {cancel_s:g}s: marked CANCELED")
                instance.report_run_canceled(instance.get_run_by_id(run_id))
    if daemon is not None:  # resumed, its threads could launch a queued run before stopping
        os.kill(daemon, signal.SIGKILL)
    proc.send_signal(signal.SIGINT)
    _end_session(proc)


def daemon_pid(dev_pid: int) -> int | None:
    """The pid of the `dagster-daemon` that `dagster dev` (dev_pid) started, if it runs."""
    found = subprocess.run(
        ["pgrep", "-P", str(dev_pid), "-f", "dagster._daemon"], capture_output=True, text=True
    )
    pids = found.stdout.split()
    return int(pids[0]) if pids else None


def in_flight_filter() -> RunsFilter:
    """The runs that have started and not finished."""
    from dagster import DagsterRunStatus, RunsFilter

    statuses = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
    return RunsFilter(statuses=statuses)


def in_flight(instance: DagsterInstance) -> list[str]:
    """Ids of the runs that have started and not finished."""
    return [r.run_id for r in instance.get_runs(in_flight_filter())]


def cancel_runs(instance: DagsterInstance, bound_s: float) -> list[str]:
    """Cancels each in-flight run once it has STARTED (a cancel sent while it is STARTING
    can be overtaken by its own start, and the run then fails) and waits for them to end;
    the runs still in flight after `bound_s`."""
    from dagster import DagsterRunStatus

    asked: set[str] = set()
    deadline = time.monotonic() + bound_s
    while runs := instance.get_runs(in_flight_filter()):
        if time.monotonic() >= deadline:
            break
        for run in runs:
            if run.status == DagsterRunStatus.STARTED and run.run_id not in asked:
                instance.run_coordinator.cancel_run(run.run_id)
                asked.add(run.run_id)
        time.sleep(POLL_S)
    return [r.run_id for r in runs]


def wait_for_runs(
    instance: DagsterInstance, bound_s: float, pause: Callable[[float], bool]
) -> list[str]:
    """Polls until no run is in flight, `bound_s` passes or `pause` returns True; the runs
    still in flight."""
    deadline = time.monotonic() + bound_s
    running = in_flight(instance)
    while running and time.monotonic() < deadline:
        if pause(min(POLL_S, max(0.0, deadline - time.monotonic()))):
            break
        running = in_flight(instance)
    return running


def _end_session(proc: subprocess.Popen[bytes]) -> None:
    """`dagster dev` exits once its services stopped; its code server once its runs ended."""
    try:
        proc.wait(timeout=EXIT_S)
    except subprocess.TimeoutExpired:
        _say(f"dagster dev did not exit within {EXIT_S:g}s: terminating it")
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        time.sleep(2)


def _say(line: str) -> None:
    print(f"orchestration.launch: {line}", file=sys.stderr, flush=True)
