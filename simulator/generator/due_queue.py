"""DueQueue: which keys are due when -- the pure timer heap under the fleet's one scheduler greenlet.

A key (a device) has at most one due time; pushing it again replaces the old one. Entries are never searched
for: a replaced or discarded entry stays in the heap and is skipped when it reaches the top (lazy deletion,
as the standard library's `heapq` documentation recommends for priority queues), so push, discard and pop are
O(log n) whatever the fleet's size. No clock of its own: callers pass `now` (docs/design.md principle 4).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["DueQueue"]

K = TypeVar("K", bound=Hashable)


class DueQueue(Generic[K]):
    """Keys by due time (any monotonic unit); ties come out in the order they were pushed."""

    __slots__ = ("_current", "_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._current: dict[K, int] = {}  # key -> the sequence number of its live entry
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._current)

    def __contains__(self, key: object) -> bool:
        return key in self._current

    def push(self, key: K, due: float) -> None:
        """Schedule `key` at `due`, replacing any earlier schedule of it."""
        seq = next(self._seq)
        self._current[key] = seq
        heapq.heappush(self._heap, (due, seq, key))

    def discard(self, key: K) -> None:
        """Forget `key` (no error when it is not scheduled)."""
        self._current.pop(key, None)

    def earliest(self) -> float | None:
        """The earliest due time of a scheduled key; None when nothing is scheduled."""
        heap, current = self._heap, self._current
        while heap and current.get(heap[0][2]) != heap[0][1]:
            heapq.heappop(heap)  # replaced or discarded: skipped here, once
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> list[K]:
        """Every key due at or before `now`, earliest first, each removed from the queue."""
        heap, current = self._heap, self._current
        out: list[K] = []
        while heap and heap[0][0] <= now:
            _, seq, key = heapq.heappop(heap)
            if current.get(key) == seq:
                del current[key]
                out.append(key)
        return out
