"""What the run launcher's forkserver imports last (orchestration/warm_server.py): the
project's code location, so that every run worker forked from it starts with the
definitions built instead of importing ~100 modules (~0.8 s a run).

A code location that fails to import (an edit with a syntax error, a bad setting) is left
alone here: each run imports it again and fails with the error, as with Dagster's own
launcher, and the forkserver (which lets only ImportError through) keeps serving.
"""

import contextlib
import importlib

LOCATION = "orchestration.definitions"

with contextlib.suppress(Exception):  # see the module doc
    importlib.import_module(LOCATION)
