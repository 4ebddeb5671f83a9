"""A code location for the run launcher's tests: a run that works until it is stopped.

Its one step writes the pid of the process it runs in to `$LAUNCHER_TEST_MARKERS/<run id>`
(the worker's environment is the launcher's), then sleeps up to WAIT_S.
"""

import os
import time
from pathlib import Path

from dagster import Definitions, OpExecutionContext, in_process_executor, job, op

WAIT_S = 120


@op
def wait_to_be_stopped(context: OpExecutionContext) -> None:
    marker = Path(os.environ["LAUNCHER_TEST_MARKERS"]) / context.run_id
    marker.write_text(str(os.getpid()))
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        time.sleep(0.1)


@job(executor_def=in_process_executor)
def waits() -> None:
    wait_to_be_stopped()


defs = Definitions(jobs=[waits])
