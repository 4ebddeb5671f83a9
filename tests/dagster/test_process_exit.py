"""A process that loaded the code location (the `dagster asset materialize` CLI) freezes its
objects at exit, so CPython's final collections skip them (orchestration/process_exit.py)."""

import subprocess
import sys

from lake.settings import REPO_ROOT

# an exit handler registered before the code location's runs after it (last in, first out)
SCRIPT = """
import atexit, gc
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0, flush=True))
import orchestration.definitions
print("frozen before exit:", gc.get_freeze_count() > 0, flush=True)
"""


def test_the_code_location_freezes_the_heap_at_exit_only() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.splitlines() == ["frozen before exit: False", "frozen at exit: True"]
