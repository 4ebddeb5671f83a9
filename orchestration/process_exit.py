"""A quicker end for the processes that load the code location.

At exit, CPython runs full garbage collections over every object still alive while it
tears its modules down: a `dagster asset materialize` process holds ~300,000 of them
(Dagster, DuckDB, pyarrow, sqlglot, pyiceberg and the run's own), which cost it 1-2 s of
CPU after its run had ended (bench/README.md, "cliwall"). Freezing them at exit
(`gc.freeze`, the last atexit step, since handlers run last-registered first) takes them
out of those collections; objects are still freed by their reference counts, and the
memory goes back with the process. What is skipped is the collection of reference cycles
at exit, whose finalizers Python does not promise to run anyway: everything the pipeline
writes is closed or committed before its step ends, and Dagster's instance is disposed
before the CLI returns.
"""

from __future__ import annotations

import atexit
import gc

_registered = False


def freeze_at_exit() -> None:
    """Register gc.freeze as an exit handler, once a process."""
    global _registered
    if not _registered:
        atexit.register(gc.freeze)
        _registered = True
