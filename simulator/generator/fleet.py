"""One generator process's share of the fleet: its devices, their transports, and the run's start.

No Locust here: the Locust driver (simulator.locust_adapter) and the plain gevent driver
(simulator.run.gevent_driver, used by bench/ and tests) both drive devices through `ProcessFleet` and
`drive_device`.

Partitioning (issue 5): device i belongs to worker i % worker_count (FleetPlan.partition), so the union of all
workers' events is the single-process plan for the same seed, whatever the worker count. Inside a worker each
starting Locust user claims the next unclaimed device of the partition (`claim_next`), so no device is ever
driven twice, however Locust spreads users over workers; devices no user claimed once spawning is complete
(fewer users than devices on this worker) are driven by the fleet itself (`unclaimed`), so none is left out.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.event
import gevent.lock

from simulator.arrival.pacer import Pacer
from simulator.clock import Clock
from simulator.device import LiveLifecycle, VirtualDevice
from simulator.download import Downloader
from simulator.generator.plan_pace import PLAN_SLICE_STEPS, pause
from simulator.generator.scheduler import REBOOT_DRAIN_S, DeviceScheduler, drain_before_reboot
from simulator.generator.target import TargetInfo
from simulator.metrics.campaign import OperationRecord
from simulator.plan import NEVER_ONLINE, FleetPlan, device_rng, fleet_firmware
from simulator.plan_cursor import PlanCursor
from simulator.records import SendRecord
from simulator.scenario.model import Scenario
from simulator.transports.base import OnboardingTimes, Transport
from simulator.transports.pairing_counts import RETRY_COUNTS

__all__ = ["REBOOT_DRAIN_S", "FleetCallbacks", "ProcessFleet", "drain_before_reboot", "drive_device",
           "make_transport_factory"]

log = logging.getLogger("fleetsim.fleet")

# Devices onboarding at once per process (registration, CSR, TLS + CONNACK, handshake). 64 keeps one core
# busy with handshakes without letting any of them approach the transport's 15 s timeout.
ONBOARDING_CONCURRENCY = 64
# Failed devices named in the counters (summary.json); the rest are counted ("failed") and logged.
FAILED_SHOWN = 50
# An operation that would start more than this late (seconds of wall time) is dropped and counted, not played
# (VirtualDevice.start_late_operation; k6 dropped_iterations): a generator behind its plan sheds whole
# operations instead of letting its backlog grow until the run's end cuts operations mid-flight.
MAX_START_LAG_S = 5.0
# At the plan's end a generator still behind gets this long to finish what it started (the start lag bound,
# plus a reboot and its reconnect); then the fleet stops and what is still open is counted where it stands.
FINISH_LATE_S = MAX_START_LAG_S + 15.0
FINISH_POLL_S = 0.2  # each poll walks every device: 5 a second is enough for a bound of seconds
# The plan is generated as the run reaches it (simulator.plan_cursor): each device holds its next operation's
# actions this long before its arrival (µs), the fleet tops the window up every FEED_PERIOD_S. 5 s ahead, fed
# each second: a feeder delayed 4 s by a saturated process still hands every operation over before it is due,
# and memory stays one look-ahead of operations (2,600 events/s x 5 s ~ 13 k actions, ~11 MB) plus the
# operations in progress (one per device at most).
LOOKAHEAD_US = 5_000_000
FEED_PERIOD_S = 1.0
# The feeder generates the plan in slices of this much plan time and lets the scheduler run between them:
# planning cost ~35 us of CPU per event when this was set (bench/plan_memory.py), so a second of a 5,000
# events/s plan in one go blocked the loop ~175 ms and every event due meanwhile left that late (bench/pacing.py:
# send-lag p99 1 s at 5,000/s). 20 ms of plan at 5,000/s is ~100 events, ~3.5 ms of CPU between two yields then;
# issue 16's planner cuts brought it to ~6 us per action (bench/plan_cost.py: 0.182 ms per rebooting operation of
# 32 actions, n = 3, commit b6c847f, AMD EPYC), so the slice now holds the loop well under 1 ms. A slice also stops
# after PLAN_SLICE_STEPS steps (simulator.generator.plan_pace): after a stall the horizon lags behind now, and
# the slice up to now + FEED_SLICE_US held the whole catch-up (issue 14: >= 1 s blocks under load).
FEED_SLICE_US = 20_000
# A self-driven device with nothing planned yet is woken in the scheduler by the feeder (extend_plan -> wake)
# when its next operation comes; the scheduler finishes it only once the cursor says its plan is over.


@dataclass
class FleetCallbacks:
    """Where records go (the stats bridge sets these)."""

    on_record: Callable[[SendRecord], None] = lambda rec: None
    on_onboarding: Callable[[str, OnboardingTimes], None] = lambda device, times: None
    on_online: Callable[[int], None] = lambda delta: None
    on_begin: Callable[[], None] = lambda: None  # the run's clock started: onboarding is over
    on_run_start: Callable[[float], None] = lambda wall: None  # the same moment, with the run's start (wall s)


# The modules each transport kind's factory imports (make_transport_factory imports them lazily: a process that
# plays the memory transport never loads the SDK). The lean and sdk ones pull in astarte.device, grpc and paho:
# seconds of CPU on a loaded machine.
TRANSPORT_MODULES = {
    "lean": ("simulator.interfaces.loader", "simulator.transports.lean_fleet"),
    "sdk": ("simulator.interfaces.loader", "simulator.transports.credentials", "simulator.transports.sdk"),
    "memory": ("simulator.transports.memory",),
}


def preload_transports() -> None:
    """Import every transport kind's modules now. A Locust worker calls it before it connects to its master:
    there the fleet is built in the `test_start` listener, which runs on the greenlet that receives the
    master's messages, so an import there stops the worker's gevent loop for as long as it takes — measured
    with gevent's monitor thread (GEVENT_MONITOR_THREAD_ENABLE, GEVENT_MAX_BLOCKING_TIME=1.5) under load: ~5 s
    importing astarte.device/grpc in both workers at once, and the master marks a worker missing after 3
    missed 1 s heartbeats and stops the test when the last one goes missing (locust.runners
    HEARTBEAT_LIVENESS), before anything is sent."""
    import importlib

    for modules in TRANSPORT_MODULES.values():
        for module in modules:
            importlib.import_module(module)


def make_transport_factory(kind: str, target: TargetInfo, clock: Clock) -> tuple[
        Callable[[str], Transport], Callable[[], None]]:
    """(device_id -> Transport, stop) for a transport kind."""
    endpoint = target.endpoint()
    if kind == "lean":
        from simulator.interfaces.loader import load_interfaces
        from simulator.transports.lean_fleet import LeanFleet

        lean = LeanFleet(endpoint, load_interfaces(), clock=clock)
        return lean.transport, lean.stop
    if kind == "sdk":
        from simulator.interfaces.loader import INTERFACES_DIR
        from simulator.transports.credentials import CredentialsCache
        from simulator.transports.sdk import SdkFleet

        # The same cache as the lean transport's: a device keeps its secret and certificate across transports.
        cache = CredentialsCache.for_target(endpoint.credentials_dir, endpoint.realm, endpoint.pairing_url)
        sdk = SdkFleet(endpoint, INTERFACES_DIR, cache, clock=clock)
        return sdk.transport, sdk.stop
    if kind == "memory":
        from simulator.transports.memory import MemoryBroker, MemoryTransport

        broker = MemoryBroker()
        return (lambda device_id: MemoryTransport(device_id, broker)), (lambda: None)
    raise ValueError(f"unknown transport {kind!r}")


@dataclass
class ProcessFleet:
    """The devices of one process. `begin()` fixes the run's start; devices wait for it."""

    scenario: Scenario
    plan: FleetPlan
    target: TargetInfo
    clock: Clock
    worker_index: int = 0
    worker_count: int = 1
    callbacks: FleetCallbacks = field(default_factory=FleetCallbacks)
    max_start_lag_s: float = MAX_START_LAG_S
    indexes: list[int] = field(init=False)
    devices: dict[int, VirtualDevice] = field(init=False, default_factory=dict)
    started: gevent.event.Event = field(init=False, default_factory=gevent.event.Event)
    stopping: gevent.event.Event = field(init=False, default_factory=gevent.event.Event)
    run_start: float = field(init=False, default=0.0)
    run_start_wall: float = field(init=False, default=0.0)
    online: int = field(init=False, default=0)
    failed: dict[int, str] = field(init=False, default_factory=dict)
    _onboarding_gate: gevent.lock.BoundedSemaphore = field(init=False, repr=False)
    _claimed: int = field(init=False, default=0)
    initial: int = field(init=False, default=0)  # devices of this process online at offset 0 (all: no ramp)
    pacer: Pacer | None = field(init=False, default=None)
    downloader: Downloader | None = field(init=False, default=None)
    overrun_s: float = field(init=False, default=0.0)  # the run went on past its planned end (finish_late)
    _factory: Callable[[str], Transport] = field(init=False, repr=False)
    _stop_transports: Callable[[], None] = field(init=False, repr=False)
    _pairing_counts_before: dict[str, int] = field(init=False, repr=False, default_factory=dict)
    cursor: PlanCursor = field(init=False, repr=False)  # the plan's cursor in this process (plan.cursor)
    _feeder: gevent.Greenlet[Any, Any] | None = field(init=False, repr=False, default=None)
    _scheduler: DeviceScheduler | None = field(init=False, repr=False, default=None)
    # begin() yields while it generates the first look-ahead: a second caller waits for the clock to start.
    _begin_lock: gevent.lock.RLock = field(init=False, repr=False, default_factory=gevent.lock.RLock)

    def __post_init__(self) -> None:
        # A device the ramp never reaches is never brought online (it has no operation); online offsets grow
        # with the index, so those are the partition's tail and users claim devices in ramp order.
        self.indexes = [i for i in self.plan.partition(self.worker_index, self.worker_count)
                        if self.plan.online_at_us(i) != NEVER_ONLINE]
        self.initial = sum(1 for i in self.indexes if self.plan.online_at_us(i) == 0)
        self.cursor = self.plan.cursor
        if not self.scenario.answers_requests:
            self.cursor.keep(self.indexes)  # a worker generates the whole plan but keeps its devices' actions
        self._onboarding_gate = gevent.lock.BoundedSemaphore(ONBOARDING_CONCURRENCY)
        self._factory, self._stop_transports = make_transport_factory(
            self.scenario.transport, self.target, self.clock)
        self._pairing_counts_before = RETRY_COUNTS.snapshot()  # pairing retries are counted process-wide
        if self.indexes:
            self._maybe_begin()  # a ramp from 0 (nothing due at offset 0): the clock starts now

    def claim_next(self) -> int | None:
        """The next device of this partition nobody drives yet (None: all claimed)."""
        if self._claimed >= len(self.indexes):
            return None
        self._claimed += 1
        return self.indexes[self._claimed - 1]

    def claim_rest(self) -> list[int]:
        """Every device still unclaimed, now claimed by the caller (the fleet drives them itself)."""
        rest, self._claimed = self.indexes[self._claimed:], len(self.indexes)
        return rest

    def create(self, index: int) -> VirtualDevice:
        installed, target = fleet_firmware(self.scenario.fleet)
        live = None
        if self.scenario.answers_requests:
            live = LiveLifecycle(mix=self.scenario.lifecycle, rng=device_rng(self.plan.seed, index),
                                 target=target, time_scale=self.scenario.time_scale,
                                 downloader=self._downloader())
        device_id = self.plan.device_ids[index]
        # A device created after the run's start (a ramp) counts its offsets from that start, not from now.
        started = self.started.is_set()
        device = VirtualDevice(
            index, device_id, self._factory(device_id), self.clock,
            run_start=self.run_start if started else self.clock.monotonic(),
            run_start_wall=self.run_start_wall if started else self.clock.wall(), firmware=installed,
            actions=() if live is not None else self.cursor.take(index), live=live,
            send_sink=self.callbacks.on_record, onboarding_sink=self.callbacks.on_onboarding)
        self.devices[index] = device
        return device

    def _downloader(self) -> Downloader | None:
        """One HTTP downloader per process when a lifecycle says `download: fetch` (None otherwise)."""
        if self.downloader is None and any(e.random is not None and e.random.download == "fetch"
                                           for e in self.scenario.lifecycle):
            from simulator.transports.http_download import HttpDownloader

            self.downloader = HttpDownloader(self.clock)
        return self.downloader

    def bring_online(self, device: VirtualDevice) -> bool:
        """Connect one device (onboarding timed by the transport). False (and recorded) when it failed.

        At most ONBOARDING_CONCURRENCY onboard at once: a fast spawn rate otherwise starts hundreds of TLS
        handshakes together (~13 ms of CPU each), they time out, and the fleet retries its way online.
        """
        try:
            with self._onboarding_gate:
                device.start()
        except Exception as exc:  # one device's failure is data, not the end of the run
            self.failed[device.index] = f"{type(exc).__name__}: {exc}"
            log.warning("device %s did not come online: %s", device.device_id, exc)
            self._maybe_begin()
            return False
        self.online += 1
        self.callbacks.on_online(1)
        self._maybe_begin()
        return True

    def _maybe_begin(self) -> None:
        """The rule that starts the run's clock: every device due online at offset 0 is online or failed."""
        if not self.started.is_set() and self.online + len(self.failed) >= self.initial:
            self.begin()

    def begin(self, at_wall: float | None = None) -> None:
        """Fix the run's start (now, or a wall time shared by every worker) and release the devices.

        The only place the run's clock starts: called by the rule above, or by a driver whose onboarding
        deadline passed (it starts anyway and says so)."""
        with self._begin_lock:
            self._begin(at_wall)

    def _begin(self, at_wall: float | None) -> None:
        if self.started.is_set():
            return
        if not self.scenario.answers_requests:
            # The first look-ahead before the clock starts: generating it (~35 us of CPU per planned event then, 5 s of
            # plan) after the start made the run's first events that late (pacing: p99 257 ms at 1,000/s). In
            # slices: 5 s of a 5,000 events/s plan was ~1 s of CPU then (~0.15 s at the ~6 us per action of
            # FEED_SLICE_US's comment), which on the loop would stop heartbeats.
            self.feed(now_us=0, pause=pause)
        # Onboarding allocated most of what this process will keep (clients, TLS contexts, plans). A full GC
        # pass over it takes ~100 ms at 1,000 devices and set the p99; freezing it out of the collector's
        # generations after ramp-up took the max from 123 to 16.5 ms. Before the clock starts, for the same reason.
        gc.collect()
        gc.freeze()
        now_mono, now_wall = self.clock.monotonic(), self.clock.wall()
        wall = now_wall if at_wall is None else at_wall
        self.run_start_wall = wall
        self.run_start = now_mono + (wall - now_wall)
        # The pacer drops nothing itself (max_lag only sets what it would call dropped); late/max-lag per due
        # point are what the summary reports. Whole operations starting over max_start_lag_s late are dropped
        # by drive_device (VirtualDevice.start_late_operation), counted; an operation started is played whole.
        self.pacer = Pacer(self.clock, self.run_start, max_lag_s=3600.0)
        for device in self.devices.values():
            device.run_start = self.run_start
            device.run_start_wall = self.run_start_wall
        if not self.scenario.answers_requests:
            self._feeder = gevent.spawn(self._feed_loop)
        self.callbacks.on_begin()
        self.callbacks.on_run_start(self.run_start_wall)
        self.started.set()

    def feed(self, now_us: int | None = None, pause: Callable[[], None] | None = None) -> None:
        """Generate the plan up to LOOKAHEAD_US past now (`now_us` on the plan's clock; default: the run's) and
        hand each device its new actions (a device not created yet takes them at `create`); with `pause`, in
        slices of FEED_SLICE_US of plan and at most PLAN_SLICE_STEPS steps, with `pause()` between them. At the
        plan's end, wake the devices with nothing left to do so that their drivers return."""
        if now_us is None:
            now_us = round((self.clock.monotonic() - self.run_start) * 1e6)
        target = now_us + LOOKAHEAD_US
        cursor = self.cursor
        budget = None if pause is None else PLAN_SLICE_STEPS
        while not cursor.reached(target):
            until = target if pause is None else min(target, max(cursor.horizon_us, now_us) + FEED_SLICE_US)
            for index in cursor.advance(until, budget):
                device = self.devices.get(index)
                if device is not None:
                    device.extend_plan(cursor.take(index))
            if pause is not None and not cursor.reached(target):
                pause()
        if self.cursor.done:
            for device in self.devices.values():
                if device._live is None and device.next_due() is None:
                    device.wake()

    def plan_over(self, index: int) -> bool:
        """Device `index` will never be handed another action (self-driven: its driver may return)."""
        return self.cursor.exhausted(index)

    def _feed_loop(self) -> None:
        while not self.stopping.is_set() and not self.cursor.done:
            self.stopping.wait(FEED_PERIOD_S)
            if not self.stopping.is_set():
                self.feed(pause=pause)

    def behind(self) -> int:
        """Self-driven devices with planned actions still due or publishes unacknowledged (the generator is
        behind its plan: stopping now would cut them)."""
        return sum(1 for d in self.devices.values()
                   if d._live is None and (d.next_due() is not None or d.pending_acks))

    def finish_late(self, limit_s: float, sleep: Callable[[float], None] = gevent.sleep,
                    cancelled: Callable[[], bool] = lambda: False) -> float:
        """At the plan's end: wait (at most `limit_s`, or until `cancelled()`) for devices still behind (late
        operations, reconnects, acks) instead of cutting them mid-operation; the seconds waited are counted
        (`overrun_ms`)."""
        start = self.clock.monotonic()
        while (self.behind() and self.clock.monotonic() - start < limit_s and not self.stopping.is_set()
               and not cancelled()):
            sleep(FINISH_POLL_S)
        self.overrun_s = self.clock.monotonic() - start
        return self.overrun_s

    def device_scheduler(self, sleep: Callable[[float], None] = gevent.sleep) -> DeviceScheduler:
        """The one scheduler of this process's devices (created by the first driver, in the hub's thread)."""
        if self._scheduler is None:
            self._scheduler = DeviceScheduler(self, sleep)
            self._scheduler.start()
        return self._scheduler

    def stop(self) -> None:
        """Stop every device (unacked publishes become `never_acked` records), then the transports."""
        self.stopping.set()
        if self._feeder is not None:
            self._feeder.kill(block=False)
        if self._scheduler is not None:
            self._scheduler.stop()
        for device in list(self.devices.values()):
            try:
                device.stop()
            except Exception as exc:
                log.warning("device %s did not stop cleanly: %s", device.device_id, exc)
        self._stop_transports()

    def operation_records(self) -> list[OperationRecord]:
        """Backend-driven devices: every OTARequest uuid they were sent, with its times (metrics.campaign)."""
        return [r for d in self.devices.values() if d.responder is not None for r in d.responder.records()]

    def take_closed_operations(self) -> list[OperationRecord]:
        """Backend-driven devices: the operations closed since the last call, forgotten by their devices
        (a worker ships them with each report; operation_records() then returns the rest)."""
        return [r for d in self.devices.values() if d.responder is not None for r in d.responder.take_closed()]

    def requests_in_flight(self) -> int:
        """Devices with an OTA operation in progress (or its events still awaiting acks)."""
        return sum(1 for d in self.devices.values() if d.busy)

    def counters(self) -> dict[str, Any]:
        total: dict[str, int] = {}
        for device in self.devices.values():
            for name, value in vars(device.counters).items():
                if isinstance(value, int):
                    total[name] = total.get(name, 0) + value
        if self.pacer is not None:
            stats = self.pacer.stats
            total["due_points"] = stats.sent
            total["due_points_late"] = stats.late  # woke more than 1 ms after the intended time
            total["due_points_max_lag_us"] = round(stats.max_lag_s * 1e6)
        # Pairing API retries and give-ups per phase ("pairing_retries.registration", ...: pairing_retry), and
        # the devices that never came online by name with the reason (the first FAILED_SHOWN of them).
        if self.overrun_s > 0:
            total["overrun_ms"] = round(self.overrun_s * 1000)
        total.update(RETRY_COUNTS.since(self._pairing_counts_before))
        failed = {self.plan.device_ids[i]: why for i, why in sorted(self.failed.items())[:FAILED_SHOWN]}
        return {"devices": len(self.indexes), "online": self.online, "failed": len(self.failed), **total,
                "failed_devices": failed}


def drive_device(fleet: ProcessFleet, device: VirtualDevice, sleep: Callable[[float], None] = gevent.sleep) -> None:
    """Run one device's actions on the absolute schedule until its plan is done or the fleet stops.

    Waits are computed from the run's start (`run_start + offset`), never after a send. The work is done by the
    fleet's one DeviceScheduler greenlet (simulator.generator.scheduler: why); the caller's greenlet (a Locust
    user, a gevent driver's) only waits here, and gets the device's error raised, as when it drove it itself.
    A backend-driven device with nothing due waits for server data (it wakes the scheduler) or the stop.
    """
    fleet.started.wait()
    if fleet.stopping.is_set():
        return
    scheduler = fleet.device_scheduler(sleep)
    result = scheduler.add(device)
    try:
        gevent.wait([result, fleet.stopping], count=1)
    finally:
        scheduler.remove(device)
    if result.ready():
        result.get()  # the device's error, raised in its driver
