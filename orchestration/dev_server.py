"""Starting and stopping a `dagster dev` process (the e2e tests and the latency benchmark)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from lake.settings import REPO_ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def start(env: dict[str, str], log: Path, port: int) -> subprocess.Popen[bytes]:
    """`dagster dev -w workspace.yaml` on 127.0.0.1:port in its own process group, started
    the documented way (orchestration.launch: the project's instance settings apply)."""
    launcher = [sys.executable, "-m", "orchestration.launch"]
    with open(log, "wb") as out:  # the child keeps its own handle
        return subprocess.Popen(
            [*launcher, "dev", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_until_up(port: int, bound_s: float) -> float:
    """Seconds the webserver took to answer; TimeoutError past `bound_s`."""
    began = time.monotonic()
    while not is_up(port):
        if time.monotonic() - began > bound_s:
            raise TimeoutError(f"dagster dev did not answer within {bound_s:.0f} s")
        time.sleep(1)
    return time.monotonic() - began


def stop(proc: subprocess.Popen[bytes], bound_s: float = 150) -> None:
    """SIGTERM the launcher, which stops `dagster dev` gracefully (orchestration/graceful_stop.py:
    in-flight runs get STOP_GRACE_SECONDS, then 30 s to cancel); SIGKILL past `bound_s`."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=bound_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
