"""Parker: one greenlet's wait for work, woken from the gevent hub or from another greenlet of the same thread.

Why not `gevent.event.Event` (set / clear / wait), which the fleet's two long-lived greenlets -- the lean I/O
loop's (simulator.transports.lean_loop) and the device scheduler's (simulator.generator.scheduler) -- used
before: in a rebooting campaign nearly every packet and every due point is a wake-up of its own (one ack or
one OTAEvent at a time), and an Event pays per wake-up a link and an unlink, a `Timeout` context (gevent's
`_FakeTimer` for an unbounded wait), and a hub callback that walks the links before the switch. Here a
wake-up from a watcher's callback (the socket is readable, the due point's timer fired) switches straight
into the parked greenlet, as gevent's own `hub.wait(watcher)` does; one from a greenlet, or while other
watchers of the same loop iteration still wait to be called (libev's `pendingcnt`), goes through one hub
callback, so watchers that fire together are still served by one wake-up.
CPU per wake-up (bench/parking_cost.py --waits 10000 --rounds 7, n = 7, a shared 2-core VM): woken by a
timer 4.07 us with an Event, 2.50 us here; by a readable fd 7.10 and 5.52 us (send and recv included). The
I/O loop per read event: 81.6 -> 72.6 us (bench/lean_loop_wakeups.py --rounds 7, n = 7, A/B in one run).

A wake-up while the owner is not parked does nothing: the owner checks its own queue before it parks (one
thread, and nothing between that check and `park` switches), so none is lost. `park` may return without a
wake-up of its own only after its greenlet was thrown into (a kill); callers loop and look again anyway.
"""

from __future__ import annotations

from typing import Any

import gevent
from greenlet import getcurrent

__all__ = ["Parker"]


class Parker:
    """`park` in the owner greenlet; `unpark` from anywhere in the hub's thread. Not thread-safe."""

    __slots__ = ("_greenlet", "_hub", "_loop", "_parked", "_scheduled")

    def __init__(self) -> None:
        self._hub: Any = gevent.get_hub()
        self._loop: Any = self._hub.loop
        self._greenlet: Any = None
        self._parked = False  # the owner waits in `park` (only then may anything switch into it)
        self._scheduled = False  # a `_resume` callback is queued in the hub

    @property
    def parked(self) -> bool:
        return self._parked

    def park(self) -> None:
        """Switch to the hub until `unpark` (called by the greenlet that waits)."""
        self._greenlet = getcurrent()
        self._parked = True
        try:
            self._hub.switch()
        finally:
            self._parked = False

    def unpark(self) -> None:
        """Resume the parked owner: at once from a watcher's callback that is the last of its loop iteration,
        else through one hub callback. No-op when the owner is not parked (or already being resumed)."""
        if not self._parked:
            return
        if not self._scheduled and getcurrent() is self._hub and not self._loop.pendingcnt:
            self._parked = False
            self._greenlet.switch()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.run_callback(self._resume)

    def _resume(self) -> None:
        self._scheduled = False
        if self._parked:  # not resumed by a direct switch meanwhile, nor killed
            self._parked = False
            self._greenlet.switch()
