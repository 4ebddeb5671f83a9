"""A run worker's process as any process of the instance sees it: pid, start time, host.

A pid alone is not an identity: after the worker ends the kernel may give its pid to
another process, and a Terminate (SIGINT) or a health check must not reach that one. The
start time (clock ticks since boot, /proc/<pid>/stat field 22) does not repeat for one
pid, so the pair names one process for the life of the host.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot; None if it is gone or a zombie."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may itself hold spaces or ')'
    fields = stat[stat.rindex(")") + 2 :].split()
    state, ticks = fields[0], fields[19]
    return None if state in ("Z", "X") else int(ticks)


@dataclass(frozen=True)
class WorkerProcess:
    pid: int
    start: int
    host: str

    @classmethod
    def of(cls, pid: int) -> WorkerProcess | None:
        """The running process `pid` on this host; None if it is already gone."""
        ticks = start_ticks(pid)
        return None if ticks is None else cls(pid, ticks, socket.gethostname())

    @classmethod
    def from_tag(cls, text: str | None) -> WorkerProcess | None:
        """The process a run's tag names; None for no tag or one that does not parse."""
        try:
            value = json.loads(text or "")
            return cls(int(value["pid"]), int(value["start"]), str(value["host"]))
        except (ValueError, TypeError, KeyError):
            return None

    def to_tag(self) -> str:
        return json.dumps({"pid": self.pid, "start": self.start, "host": self.host})

    def on_this_host(self) -> bool:
        return self.host == socket.gethostname()

    def alive(self) -> bool:
        """Still this process (not a successor with its pid), and not exited."""
        return start_ticks(self.pid) == self.start

    def interrupt(self) -> bool:
        """SIGINT to the process if it is still this one; False if it is gone."""
        if not self.alive():
            return False
        try:
            os.kill(self.pid, signal.SIGINT)
        except ProcessLookupError:
            return False
        return True


def can_identify_processes() -> bool:
    """Whether this platform shows processes' start times (Linux's /proc)."""
    return start_ticks(os.getpid()) is not None
