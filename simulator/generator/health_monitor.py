"""Generator health sampled while the run goes: event-loop lag and CPU of this process (issue 6 item 4).

Loop lag: a greenlet asks to wake every 100 ms and records how late it woke; a loop busy with I/O or a long
GC pass shows up as lag, the same lag every publish suffers. CPU: psutil process times once a second.
"""

from __future__ import annotations

from typing import Any

import gevent

from simulator.clock import Clock, grid_delay
from simulator.metrics.health import GeneratorHealth

__all__ = ["HealthMonitor"]

TICK_S = 0.1  # loop-lag probe period (s)
CPU_EVERY = 10  # ticks between CPU samples (1 s)


class HealthMonitor:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.health = GeneratorHealth(clock)
        self._greenlet: Any = None

    def start(self) -> None:
        if self._greenlet is None:
            self.health.sample_cpu()
            self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        tick = 0
        while True:
            before = self.clock.monotonic()
            # On the clock's multiples of TICK_S: the I/O loop's idle housekeeping wakes on the same instants
            # (lean_loop.IoLoop), and both are served in one wake-up of the loop (each cost ~0.15-0.2 ms of CPU
            # in an idle process, bench/idle_fleet_cost.py). The lag is how late the wake-up came, as before.
            delay = grid_delay(before, TICK_S)
            gevent.sleep(delay)
            self.health.record_loop_lag(max(0.0, self.clock.monotonic() - before - delay))
            tick += 1
            if tick % CPU_EVERY == 0:
                self.health.sample_cpu()

    def stop(self) -> GeneratorHealth:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
            self.health.sample_cpu()
        return self.health
