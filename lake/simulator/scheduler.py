"""A tiny discrete-event engine that every stream's generator is built on.

Actions run in time order; each may emit records (at its own time or later) and schedule
further actions. `take_until(end)` runs every action before `end` and returns the records
whose event time is before `end`, in time order. Because an action never emits a record
earlier than itself, nothing emitted later can belong to a window already handed out, and
the sequence of records does not depend on how time is cut into windows.
"""

from __future__ import annotations

import heapq
import itertools
import random
import uuid
from collections.abc import Callable
from typing import Any

Record = dict[str, Any]
Action = Callable[[int], None]


class EventSource:
    """Base of the stream generators; times are integer milliseconds since the epoch."""

    # Times are rounded up to this many milliseconds (CloudTrail has whole seconds).
    resolution_ms = 1

    def __init__(self, rng: random.Random, origin_ms: int) -> None:
        self.rng = rng
        self.origin_ms = self._round_up(origin_ms)
        self._actions: list[tuple[int, int, Action]] = []
        self._out: list[tuple[int, int, Record]] = []
        self._seq = itertools.count()

    def _round_up(self, t_ms: int) -> int:
        r = self.resolution_ms
        return -(-t_ms // r) * r

    def at(self, t_ms: float, action: Action) -> None:
        heapq.heappush(self._actions, (self._round_up(int(t_ms)), next(self._seq), action))

    def emit(self, t_ms: int, record: Record) -> None:
        heapq.heappush(self._out, (t_ms, next(self._seq), record))

    def take_until(self, end_ms: int) -> list[tuple[int, Record]]:
        actions = self._actions
        while actions and actions[0][0] < end_ms:
            t, _, action = heapq.heappop(actions)
            action(t)
        out = []
        while self._out and self._out[0][0] < end_ms:
            t, _, record = heapq.heappop(self._out)
            out.append((t, record))
        return out

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def hex_id(self, n: int) -> str:
        return f"{self.rng.getrandbits(4 * n):0{n}x}"
