"""A code location for the run launcher's tests: a run that works until it is stopped.

Its one step writes to `$LAUNCHER_TEST_MARKERS/<run id>` (the worker's environment is the
launcher's) the pid of the process it runs in, its parent's (the forkserver of a forked
worker) and `lake.settings.PROBE` (set by tests that edit a copy of the project; None
here), then sleeps up to WAIT_S or until `<run id>.stop` appears there (the run succeeds).
"""

import json
import os
import time
from pathlib import Path

from dagster import Definitions, OpExecutionContext, in_process_executor, job, op

WAIT_S = 120


@op
def wait_to_be_stopped(context: OpExecutionContext) -> None:
    import lake.settings

    markers = Path(os.environ["LAUNCHER_TEST_MARKERS"])
    probe = getattr(lake.settings, "PROBE", None)
    report = {"pid": os.getpid(), "ppid": os.getppid(), "probe": probe}
    partial = markers / f".{context.run_id}"  # the test reads whole reports only
    partial.write_text(json.dumps(report))
    partial.replace(markers / context.run_id)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and not (markers / f"{context.run_id}.stop").exists():
        time.sleep(0.1)


@job(executor_def=in_process_executor)
def waits() -> None:
    wait_to_be_stopped()


defs = Definitions(jobs=[waits])
