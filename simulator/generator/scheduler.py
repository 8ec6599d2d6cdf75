"""DeviceScheduler: ONE greenlet fires the due actions of every device of a process, from a timer heap.

Why: a greenlet per device, woken by its own timer for each of its events, cost the engine ~77 µs of CPU per
OTAEvent on this 2-core machine (~284 µs/event against ~207 µs with one greenlet for all devices, closed loop
at 1,000 devices, bench/throughput.py): a libev timer, a Timeout object and two greenlet switches per event.
Here a device due now is served in a batch with every other device due now, and the hub wakes once per batch.

The schedule is unchanged (docs/design.md principle 3): a device's next due point is `run_start + offset`
(`VirtualDevice.next_due`), kept in a DueQueue; when it comes, the Pacer records its lateness and the device
runs what is due (`run_due`), exactly as drive_device did in a greenlet of its own. The two steps that block
their caller run in a short-lived greenlet of the device's own, so the others never wait for them:
- a reconnect after a reboot (TLS handshake, CONNACK, the Astarte handshake's acks: `reconnecting`);
- the drain before a reboot: in-flight publishes acknowledged first (`drain_before_reboot`, bounded).
Backend-driven devices are woken when data arrives (an OTARequest) or a download pushes an input (`wake`).

Must be used from the OS thread whose hub runs it (gevent hubs are per thread).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Protocol

import gevent
import gevent.event

from simulator.arrival.pacer import Pacer
from simulator.clock import Clock
from simulator.device import VirtualDevice
from simulator.events import Value
from simulator.generator.due_queue import DueQueue
from simulator.parking import Parker

__all__ = ["DRAIN_POLL_S", "REBOOT_DRAIN_S", "DeviceScheduler", "FleetView", "drain_before_reboot"]

log = logging.getLogger("fleetsim.fleet")

# A rebooting device first lets its in-flight publishes be acknowledged (a clean shutdown flushes the MQTT
# session; edgehog-device-runtime publishes Rebooting and then reboots). Bounded: a broker that never acks must
# not hold the reboot forever. Loopback acks take ~1-10 ms; 2 s ran out for 60% of the reboots of a campaign
# on a 2-core machine at load average 10 (bench/campaign_capacity.py), so the bound is the transport's own
# patience for an ack-less broker, less its 15 s connect timeout.
REBOOT_DRAIN_S = 10.0
DRAIN_POLL_S = 0.005
# Devices served before the scheduler yields to the hub, so the I/O greenlet (acks) and the blocking steps are
# not starved by a burst of due devices (the same bound as the lean transport's I/O batch, lean_loop._BATCH).
BATCH = 64


def drain_before_reboot(device: VirtualDevice, clock: Clock, sleep: Callable[[float], None]) -> None:
    """Wait (bounded, counted) until the device's publishes are acknowledged; the reboot then loses none."""
    device.counters.reboot_drain_waits += 1
    deadline = clock.monotonic() + REBOOT_DRAIN_S
    while device.pending_acks and clock.monotonic() < deadline:
        sleep(DRAIN_POLL_S)
    if device.pending_acks:
        device.counters.reboot_drain_timeouts += 1


class FleetView(Protocol):
    """What the scheduler reads of its ProcessFleet (simulator.generator.fleet)."""

    clock: Clock
    run_start: float
    pacer: Pacer | None
    stopping: gevent.event.Event
    max_start_lag_s: float

    def plan_over(self, index: int) -> bool:
        """Device `index` will never be handed another planned action."""
        ...


class DeviceScheduler:
    """See the module docstring. `add` a device, wait on what it returns; `stop` with the fleet."""

    def __init__(self, fleet: FleetView, sleep: Callable[[float], None] = gevent.sleep) -> None:
        self._fleet = fleet
        self._sleep = sleep
        self._queue: DueQueue[VirtualDevice] = DueQueue()
        self._ready: deque[VirtualDevice] = deque()
        self._queued: set[VirtualDevice] = set()  # in _ready (served once per wake, however often woken)
        self._driven: dict[VirtualDevice, gevent.event.AsyncResult] = {}  # added and not finished
        self._helpers: dict[VirtualDevice, gevent.Greenlet] = {}  # in a blocking step of their own
        self._wake = Parker()  # the scheduler greenlet's: a due point's timer, a wake, the stop (parking: why)
        self._greenlet: gevent.Greenlet | None = None
        self._stopped = False
        fleet.stopping.rawlink(lambda _event: self._wake.unpark())

    # ---- the drivers' side ----

    def add(self, device: VirtualDevice) -> gevent.event.AsyncResult:
        """Drive `device` from now on; the result is set when its plan is done (its error, if it failed)."""
        result = self._driven.get(device)
        if result is not None:
            return result
        result = self._driven[device] = gevent.event.AsyncResult()
        original = device._on_data  # the device's own handler, wrapped to wake it

        def on_data(interface: str, path: str, value: Value) -> None:
            original(interface, path, value)
            self.wake(device)

        device.transport.on_data(on_data)
        device.wake = lambda: self.wake(device)  # a real download (download: fetch) pushed an input
        self.wake(device)
        return result

    def start(self) -> None:
        """Start the greenlet (once). Tests leave it unstarted and call `serve` on a virtual clock."""
        if self._greenlet is None and not self._stopped:
            self._greenlet = gevent.spawn(self._run)

    def earliest(self) -> float | None:
        """The next due time of a device waiting for its time (monotonic s); None: none waits."""
        return self._queue.earliest()

    def remove(self, device: VirtualDevice) -> None:
        """Stop driving `device` (its driver went away); a blocking step in progress is killed."""
        self._driven.pop(device, None)
        self._queue.discard(device)
        helper = self._helpers.pop(device, None)
        if helper is not None:
            helper.kill(block=False)

    def wake(self, device: VirtualDevice) -> None:
        """Look at `device` again now (new data, a pushed input, its ack in a closed loop). O(1), no switch."""
        if device not in self._driven or device in self._queued or device in self._helpers:
            return
        self._queued.add(device)
        self._ready.append(device)
        self._wake.unpark()

    def stop(self) -> None:
        """End the greenlet and every blocking step; every driver's result is set. Idempotent."""
        self._stopped = True
        self._wake.unpark()
        for helper in list(self._helpers.values()):
            helper.kill(block=False)
        self._helpers.clear()
        if self._greenlet is not None and self._greenlet is not gevent.getcurrent():
            self._greenlet.kill(block=False)
        for result in self._driven.values():
            if not result.ready():
                result.set(None)
        self._driven.clear()

    # ---- the one greenlet ----

    def _run(self) -> None:
        fleet = self._fleet
        clock = fleet.clock
        loop = gevent.get_hub().loop
        wake = self._wake
        while not self._stopped and not fleet.stopping.is_set():
            self.serve(clock.monotonic())
            if self._ready:
                self._sleep(0)  # let the I/O greenlet and the blocking steps run between batches
                continue
            earliest = self._queue.earliest()
            if earliest is None:
                wake.park()
                continue
            # Until the next due point or a wake, whichever comes first. Not a wait with a gevent Timeout: it
            # ends by being thrown into this greenlet (an exception raised through a greenlet switch), and
            # almost every wait here ends on its due point: ~10 us of CPU per wait against ~4 us for a timer
            # that wakes it (gevent 26.9, this 2-core VM), at one wait per due point (26 OTAEvents per campaign
            # operation). Same libev timer as Timeout's (priority -1, `update`: the loop's time refreshed
            # first, so it does not fire early); its callback switches straight into this greenlet (Parker).
            timer = loop.timer(max(0.0, earliest - clock.monotonic()), priority=-1)
            timer.start(wake.unpark, update=True)
            try:
                wake.park()
            finally:
                timer.stop()
                timer.close()

    def serve(self, now: float) -> int:
        """Serve the devices due at `now` and those woken, at most BATCH of them; how many were served."""
        ready, queued = self._ready, self._queued
        for device in self._queue.pop_due(now):
            if device not in queued:
                queued.add(device)
                ready.append(device)
        served = 0
        for _ in range(min(BATCH, len(ready))):
            device = ready.popleft()
            queued.discard(device)
            if device in self._driven and device not in self._helpers:
                self._serve(device)
                served += 1
        return served

    def _serve(self, device: VirtualDevice) -> None:
        try:
            self._step(device)
        except Exception as exc:  # one device's failure ends its driver (raised there), not the fleet
            self._finish(device, exc)

    def _step(self, device: VirtualDevice) -> None:
        """drive_device's loop for one device, up to its next wait: scheduled, parked, handed off or done."""
        fleet = self._fleet
        pacer = fleet.pacer
        assert pacer is not None  # set by ProcessFleet.begin, before any device is added
        while True:
            due = device.next_due()
            if due is None:
                if self._done(device):
                    self._finish(device, None)  # self-driven and its plan over: nothing else will be due
                return  # nothing due yet: waits for a request or its next operation (wake), or the stop
            offset = due - fleet.run_start
            if pacer.wait_time(offset) > 0:
                self._queue.push(device, due)
                return
            if device.start_late_operation(fleet.max_start_lag_s):
                continue  # dropped and counted: the device's next operation (or nothing) is due next
            if device.reconnecting:
                self._hand_off(device, offset)
                return
            pacer.record(offset, fleet.clock.monotonic())  # lateness per due point: late / max lag
            device.run_due(hold_reboot=True, hold_reconnect=True)
            if device.pending_acks and device.reboot_due():
                self._hand_off(device, None)
                return
            if self._done(device):
                self._finish(device, None)  # self-driven and done: nothing else will ever be due
                return

    def _done(self, device: VirtualDevice) -> bool:
        """Self-driven, nothing due, and the plan's cursor will never hand it another operation (the lazy plan
        hands operations over a look-ahead ahead of their arrival: an idle device is not a finished one)."""
        return device._live is None and device.next_due() is None and self._fleet.plan_over(device.index)

    def _hand_off(self, device: VirtualDevice, offset: float | None) -> None:
        self._helpers[device] = gevent.spawn(self._blocking_step, device, offset)

    def _blocking_step(self, device: VirtualDevice, offset: float | None) -> None:
        """In the device's own greenlet: a due reconnect (`offset`: its due point) or a drain, then a reboot."""
        fleet = self._fleet
        clock = fleet.clock
        try:
            if offset is not None:
                assert fleet.pacer is not None
                fleet.pacer.record(offset, clock.monotonic())
                device.run_due(hold_reboot=True)  # the reconnect blocks this greenlet only
            if device.pending_acks and device.reboot_due():
                drain_before_reboot(device, clock, self._sleep)
                device.run_due()
        except Exception as exc:
            self._helpers.pop(device, None)
            self._finish(device, exc)
            return
        self._helpers.pop(device, None)
        if self._done(device):
            self._finish(device, None)
        else:
            self.wake(device)

    def _finish(self, device: VirtualDevice, error: BaseException | None) -> None:
        result = self._driven.pop(device, None)
        self._queue.discard(device)
        if result is None:
            return
        if error is None:
            result.set(None)
        else:
            log.warning("device %s stopped driving: %s", device.device_id, error)
            result.set_exception(error)
