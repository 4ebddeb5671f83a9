"""What the run launcher's forkserver imports last (orchestration/warm_server.py): the
project's code location, so that every run worker forked from it starts with the
definitions built instead of importing ~100 modules (~0.8 s a run), and, for a lake on S3,
botocore's parsed S3 models (lake.s3_clients.warm: a run's first S3 client then costs
~0.05 s of CPU instead of 0.3-0.8 s).

A code location that fails to import (an edit with a syntax error, a bad setting) is left
alone here: each run imports it again and fails with the error, as with Dagster's own
launcher, and the forkserver (which lets only ImportError through) keeps serving.
"""

import contextlib
import importlib

LOCATION = "orchestration.definitions"

with contextlib.suppress(Exception):  # see the module doc
    location = importlib.import_module(LOCATION)
    if any(
        uri.startswith("s3://")
        for uri in (location.settings.landing_uri, location.settings.lake_uri)
    ):
        from lake.s3_clients import warm

        warm("s3")  # models only: no credentials looked up, no connection for a child to share
