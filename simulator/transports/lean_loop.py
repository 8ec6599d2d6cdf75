"""One shared, event-driven I/O path for thousands of MQTT connections in one gevent hub.

Why (docs/protocol.md section 7, measured on 2 vCPUs): a paho loop per device (`loop_start()`, which gevent turns
into a greenlet doing real `select()` calls) costs ~1.1-1.6 ms CPU per QoS 2 message, so 1,000 devices
saturate a core with p50 ~1 s; and `select()` fails for fds >= 1024 (~338 devices per process). Here instead:

- one persistent libev READ watcher per socket (`hub.loop.io(fd, 1)`: epoll, no fd limit) whose callback only
  queues the connection (set a bit, append to a deque, wake the I/O greenlet: simulator.parking, straight into
  it from the last callback of a loop iteration): it runs inside the hub and must never block;
- a WRITE watcher (`io(fd, 2)`) only while a connection has unwritten bytes (paho `want_write()`);
- ONE I/O greenlet draining the queue: `handle_read()` / `handle_write()` of each ready connection (paho
  `loop_read()` / `loop_write()` on a non-blocking socket: never switches greenlets);
- ONE housekeeping greenlet: timers (reconnect backoff) and `handle_misc()` (paho `loop_misc()`: keepalive
  PINGREQ, dead-peer detection) for every connection, spread evenly over `misc_period_s` so 10,000 connections
  cost a steady trickle instead of a burst. It wakes every `tick_s` while a timer is pending (a timer fires at
  most that late) and every `idle_tick_s` otherwise, serving the connections by the time since its last
  wake-up (each still once per `misc_period_s`). Why: each wake-up of an idle process cost ~0.15-0.2 ms of CPU,
  while visiting a connection with nothing to do costs a few us (LeanTransport.handle_misc). Its idle
  wake-ups fall on multiples of `idle_tick_s` of the monotonic clock, as the health monitor's 100 ms probes do
  (simulator.generator.health_monitor), so both are served in one wake-up of the loop. 1,000 idle connected
  devices (bench/idle_fleet_cost.py --window 12 --rounds 3, medians, n = 3): 29.5 -> 11.1 wake-ups/s,
  6.65 -> 4.03 ms of CPU per second.

No thread and no greenlet per connection. Must be used from the OS thread that created it (gevent hubs are
per thread); any greenlet of that thread may call in.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import gevent
import gevent.event

from simulator.clock import grid_delay
from simulator.parking import Parker

__all__ = ["READ", "WRITE", "Channel", "IoLoop", "Slot"]

_LOG = logging.getLogger(__name__)
READ = 1  # libev EV_READ
WRITE = 2  # libev EV_WRITE
# Connections served before the I/O greenlet yields, so publishers and timers are not starved (a full
# drain of 10,000 ready sockets would otherwise hold the hub for tens of ms).
_BATCH = 64


class Channel(Protocol):
    """A connection the loop serves; every method runs in a loop greenlet and must not block."""

    def handle_read(self) -> None: ...

    def handle_write(self) -> None: ...

    def handle_misc(self, now: float) -> None: ...


class Slot:
    """One registered socket: its watchers and its place in the ready queue."""

    __slots__ = ("channel", "closed", "fd", "pending", "reader", "writer")

    def __init__(self, fd: int, channel: Channel, reader: Any) -> None:
        self.fd = fd
        self.channel = channel
        self.reader = reader
        self.writer: Any = None
        self.pending = 0  # READ|WRITE bits queued and not yet served
        self.closed = False


class IoLoop:
    """See the module docstring. `stop()` ends both greenlets and closes every watcher."""

    def __init__(self, misc_period_s: float = 2.0, tick_s: float = 0.05, idle_tick_s: float = 0.5) -> None:
        self._loop = gevent.get_hub().loop
        self._ready: deque[Slot] = deque()
        self._wake = Parker()  # the I/O greenlet's, woken by a ready slot (parking: why not an Event)
        self._slots: dict[int, Slot] = {}
        self._members: dict[Channel, None] = {}  # insertion-ordered set, for housekeeping
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.misc_period_s = misc_period_s
        self.tick_s = tick_s
        self.idle_tick_s = idle_tick_s
        self._misc_wake = gevent.event.Event()  # set by call_later: a timer now waits (tick_s cadence)
        self._stopped = False
        self.served = 0  # ready events handled (diagnostics)
        self._io = gevent.spawn(self._run_io)
        self._misc = gevent.spawn(self._run_misc)

    # ---- registration (called from paho's on_socket_open / on_socket_close) ----

    def register(self, fd: int, channel: Channel) -> Slot:
        """Start a persistent read watcher on fd; the channel is served when readable."""
        old = self._slots.pop(fd, None)
        if old is not None:  # the fd number was reused before unregister: drop the stale watchers
            self._close_slot(old)
        reader = self._loop.io(fd, READ)
        slot = Slot(fd, channel, reader)
        reader.start(self._on_event, slot, READ)
        self._slots[fd] = slot
        return slot

    def unregister(self, slot: Slot) -> None:
        """Stop and close the watchers (before the fd is closed, so a reused fd number is never confused)."""
        if self._slots.get(slot.fd) is slot:
            del self._slots[slot.fd]
        self._close_slot(slot)

    @staticmethod
    def _close_slot(slot: Slot) -> None:
        slot.closed = True
        for watcher in (slot.reader, slot.writer):
            if watcher is not None:
                watcher.stop()
                watcher.close()
        slot.reader = slot.writer = None

    def want_write(self, slot: Slot, on: bool) -> None:
        """Arm (or disarm) the write watcher: armed only while bytes wait, or epoll would spin."""
        if slot.closed:
            return
        if on and slot.writer is None:
            slot.writer = self._loop.io(slot.fd, WRITE)
            slot.writer.start(self._on_event, slot, WRITE)
        elif not on and slot.writer is not None:
            slot.writer.stop()
            slot.writer.close()
            slot.writer = None

    def requeue(self, slot: Slot, events: int) -> None:
        """Serve again without waiting for the fd (TLS: bytes already decrypted, invisible to epoll)."""
        self._on_event(slot, events)

    def _on_event(self, slot: Slot, events: int) -> None:
        # Runs in the hub (a watcher's callback; `requeue`: in the I/O greenlet): O(1), never blocks. The only
        # switch is the unpark's: into the parked I/O greenlet, which serves and parks back into the hub.
        if slot.closed:
            return
        if not slot.pending:
            self._ready.append(slot)
        slot.pending |= events
        self._wake.unpark()  # the last watcher of its loop iteration: straight into the parked I/O greenlet

    def add_member(self, channel: Channel) -> None:
        self._members[channel] = None

    def remove_member(self, channel: Channel) -> None:
        self._members.pop(channel, None)

    def call_later(self, delay_s: float, fn: Callable[[], None]) -> None:
        """Run fn (quick, non-blocking: spawn blocking work) in the housekeeping greenlet after delay_s."""
        heapq.heappush(self._timers, (time.monotonic() + max(0.0, delay_s), next(self._seq), fn))
        self._misc_wake.set()

    # ---- the two greenlets ----

    def _run_io(self) -> None:
        ready = self._ready
        while not self._stopped:
            if not ready:
                self._wake.park()
                continue
            for _ in range(min(_BATCH, len(ready))):
                slot = ready.popleft()
                events, slot.pending = slot.pending, 0
                if slot.closed:
                    continue
                self.served += 1
                try:
                    if events & READ:
                        slot.channel.handle_read()
                    if events & WRITE and not slot.closed:
                        slot.channel.handle_write()
                except Exception:  # one broken connection must not stop the fleet's I/O
                    _LOG.exception("lean I/O: unhandled error serving fd %d", slot.fd)
            if ready:  # let publishers and timers run between batches; an empty queue waits (and yields) at once
                gevent.sleep(0)

    def _run_misc(self) -> None:
        snapshot: list[Channel] = []
        cursor = 0
        last = time.monotonic()
        while not self._stopped:
            if self._timers:
                gevent.sleep(self.tick_s)  # the housekeeping cadence itself, not waiting for logic
            else:  # nothing due but the connections' visits: until the next idle tick, or a timer's arrival
                self._misc_wake.clear()
                self._misc_wake.wait(grid_delay(time.monotonic(), self.idle_tick_s))
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                _, _, fn = heapq.heappop(self._timers)
                try:
                    fn()
                except Exception:
                    _LOG.exception("lean housekeeping: timer failed")
            if cursor >= len(snapshot):
                snapshot, cursor = list(self._members), 0
            # ceil: everyone served once per misc_period_s, whatever the time since the last wake-up
            share = math.ceil(len(snapshot) * min(now - last, self.misc_period_s) / self.misc_period_s)
            last = now
            for channel in snapshot[cursor:cursor + share]:
                try:
                    channel.handle_misc(now)
                except Exception:
                    _LOG.exception("lean housekeeping: loop_misc failed")
            cursor += share

    def stop(self) -> None:
        """End the greenlets and close every watcher. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._wake.unpark()
        gevent.killall([self._io, self._misc], block=True, timeout=5)
        for slot in list(self._slots.values()):
            self._close_slot(slot)
        self._slots.clear()
        self._members.clear()
        self._timers.clear()
        self._ready.clear()
