"""Clocks, injected everywhere time matters so that tests assert exact times and never sleep.

Two readings: `monotonic()` (seconds, for intervals and schedules; never goes back) and `wall()` (seconds since
the Unix epoch, for the `t` of an OTAEvent and for end-to-end latency across processes on one host).
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "MonotonicClock", "VirtualClock", "grid_delay"]


# A multiple of the period closer than this fraction of it is skipped: a timer that fired a hair before its
# instant (libev counts from its cached loop time, float rounding) would otherwise wake again at once.
_GRID_SKIP = 0.01


def grid_delay(now_s: float, period_s: float) -> float:
    """Seconds from `now_s` to the next multiple of `period_s` at least 1 % of a period away: periodic
    wake-ups of different greenlets that sleep by this land on the same instants, and a gevent loop serves
    timers due together in one wake-up (each wake-up of an idle process costs ~0.15-0.2 ms of CPU,
    bench/idle_fleet_cost.py)."""
    delay = period_s - now_s % period_s
    return delay + period_s if delay < period_s * _GRID_SKIP else delay


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def wall(self) -> float: ...


class MonotonicClock:
    """The real clock."""

    __slots__ = ()

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()


class VirtualClock:
    """A clock that only moves when told to; wall = epoch + monotonic."""

    __slots__ = ("_epoch", "_now")

    def __init__(self, start: float = 0.0, epoch: float = 1_700_000_000.0) -> None:
        self._now = start
        self._epoch = epoch

    def monotonic(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._epoch + self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock cannot go back ({seconds} s)")
        self._now += seconds

    def set(self, monotonic: float) -> None:
        if monotonic < self._now:
            raise ValueError(f"a clock cannot go back (from {self._now} to {monotonic})")
        self._now = monotonic
