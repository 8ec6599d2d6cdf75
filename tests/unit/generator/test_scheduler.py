"""DeviceScheduler on a virtual clock and the memory transport: one loop serves every device on its absolute
schedule, in due order; a reboot's reconnect and the drain before it run in a greenlet of the device's own."""

from __future__ import annotations

from dataclasses import dataclass, field

import gevent
import gevent.event
import numpy as np

from simulator.arrival.pacer import Pacer
from simulator.clock import MonotonicClock, VirtualClock
from simulator.device import LiveLifecycle, VirtualDevice
from simulator.events import OTA_EVENT_INTERFACE, OTA_REQUEST_INTERFACE, ActionKind, PlannedAction
from simulator.generator.scheduler import DeviceScheduler
from simulator.lifecycle.plans import plan_random
from simulator.records import SendRecord
from simulator.scenario.model import LifecycleMixEntry
from simulator.transports.memory import MemoryBroker
from tests.unit.device.test_virtual_device import NEW, OLD, U, spec

START = 100.0


@dataclass
class Fleet:  # the FleetView a ProcessFleet is
    clock: VirtualClock = field(default_factory=lambda: VirtualClock(start=START))
    run_start: float = START
    pacer: Pacer | None = None
    stopping: gevent.event.Event = field(default_factory=gevent.event.Event)
    max_start_lag_s: float = 5.0
    pending: set[int] = field(default_factory=set)  # devices the plan's cursor will still hand actions to

    def __post_init__(self) -> None:
        self.pacer = Pacer(self.clock, self.run_start, max_lag_s=3600.0)

    def plan_over(self, index: int) -> bool:
        return index not in self.pending


def _publish(offset_s: float, occurrence: int) -> PlannedAction:
    return PlannedAction(device=0, offset_us=round(offset_s * 1e6), kind=ActionKind.PUBLISH,
                         interface=OTA_EVENT_INTERFACE, path="/event",
                         value={"requestUUID": U, "status": "Downloading", "statusProgress": occurrence,
                                "statusCode": "", "message": ""}, occurrence=occurrence)


def _rig(plans: dict[str, list[PlannedAction]], auto_ack: bool = True) -> tuple[
        Fleet, MemoryBroker, DeviceScheduler, dict[str, VirtualDevice], list[SendRecord]]:
    fleet = Fleet()
    broker = MemoryBroker(clock=fleet.clock, auto_ack=auto_ack)
    records: list[SendRecord] = []
    devices = {name: VirtualDevice(i, name, broker(name), fleet.clock, run_start=START, firmware=OLD,
                                   actions=actions, send_sink=records.append)
               for i, (name, actions) in enumerate(plans.items())}
    for device in devices.values():
        device.start()
    return fleet, broker, DeviceScheduler(fleet), devices, records


def test_devices_are_served_in_due_order_on_the_absolute_schedule() -> None:
    fleet, broker, scheduler, devices, records = _rig({
        "a": [_publish(1.0, 0), _publish(3.0, 1)],
        "b": [_publish(2.0, 0), _publish(2.0, 1), _publish(4.0, 2)],
    })
    results = {name: scheduler.add(d) for name, d in devices.items()}
    assert scheduler.serve(fleet.clock.monotonic()) == 2  # both looked at once: nothing due yet
    sent: list[tuple[str, float]] = []
    while (due := scheduler.earliest()) is not None:
        fleet.clock.set(due)
        scheduler.serve(due)
        sent += [(r.key[0], r.sent - fleet.clock.wall() + due - START) for r in records[len(sent):]]
    assert sent == [("a", 1.0), ("b", 2.0), ("b", 2.0), ("a", 3.0), ("b", 4.0)]
    assert all(r.intended == r.sent for r in records)  # served at their due time: no lag
    assert all(results[name].ready() for name in devices)  # self-driven plans done: the drivers return
    assert fleet.pacer is not None and fleet.pacer.stats.sent == 4 and fleet.pacer.stats.late == 0
    assert [m.interface for m in broker.published_by("b")].count(OTA_EVENT_INTERFACE) == 3


def test_a_late_device_is_served_at_once_and_its_lag_counted() -> None:
    fleet, _, scheduler, devices, records = _rig({"a": [_publish(1.0, 0)]})
    scheduler.add(devices["a"])
    fleet.clock.set(START + 1.25)  # the generator was busy: 250 ms late
    scheduler.serve(fleet.clock.monotonic())
    assert len(records) == 1 and round(records[0].sent - records[0].intended, 6) == 0.25
    assert fleet.pacer is not None and fleet.pacer.stats.late == 1


def test_a_woken_device_is_served_once_however_often_woken() -> None:
    fleet, _, scheduler, devices, records = _rig({"a": [_publish(0.0, 0), _publish(0.0, 1)]})
    scheduler.add(devices["a"])
    for _ in range(3):
        scheduler.wake(devices["a"])
    assert scheduler.serve(fleet.clock.monotonic()) == 1 and len(records) == 2


def test_reconnect_and_drain_run_in_a_greenlet_of_their_own() -> None:
    plan = plan_random(0, spec(), np.random.default_rng(0), U, 0, 1.0, OLD, NEW)
    fleet, broker, scheduler, devices, records = _rig({"dev": list(plan.actions)}, auto_ack=False)
    device, transport = devices["dev"], broker.transports["dev"]
    transport.ack()  # the startup properties
    polls: list[float] = []

    def sleep(seconds: float) -> None:  # the drain's poll: the broker acks after the second one
        polls.append(seconds)
        fleet.clock.advance(seconds)
        if len(polls) == 2:
            transport.ack()

    scheduler._sleep = sleep
    result = scheduler.add(device)
    rebooted = False
    while not result.ready():
        due = scheduler.earliest()
        if due is not None:
            fleet.clock.set(max(due, fleet.clock.monotonic()))
        scheduler.serve(fleet.clock.monotonic())
        if not device.reboot_due():  # acks land between due points, except while a reboot is held
            transport.ack()
        gevent.sleep(0)  # sleep-ok: a yield: the hand-off greenlet (drain + reboot, or reconnect) runs
        rebooted = rebooted or device.counters.reboots == 1
    transport.ack()  # the last event's PUBCOMP
    assert rebooted and len(polls) == 2 and transport.connects == 2  # drained, rebooted, reconnected
    assert device.counters.reboot_drain_waits == 1 and device.counters.reboot_drain_timeouts == 0
    assert all(r.error is None for r in records)
    assert len(records) == sum(1 for a in plan.actions if a.kind is ActionKind.PUBLISH)


def test_stop_ends_every_driver() -> None:
    fleet, _, scheduler, devices, _ = _rig({"a": [_publish(60.0, 0)]})
    result = scheduler.add(devices["a"])
    scheduler.serve(fleet.clock.monotonic())
    assert not result.ready() and scheduler.earliest() == START + 60.0
    scheduler.stop()
    assert result.ready() and result.get() is None


def test_a_backend_driven_device_is_woken_by_its_request() -> None:
    fleet = Fleet()
    broker = MemoryBroker(clock=fleet.clock)
    live = LiveLifecycle((LifecycleMixEntry(1.0, random=spec()),), np.random.default_rng(1), NEW)
    records: list[SendRecord] = []
    device = VirtualDevice(0, "dev", broker("dev"), fleet.clock, run_start=START, firmware=OLD, live=live,
                           send_sink=records.append)
    device.start()
    scheduler = DeviceScheduler(fleet)
    result = scheduler.add(device)
    assert scheduler.serve(fleet.clock.monotonic()) == 1 and scheduler.earliest() is None  # nothing to do
    assert broker.deliver("dev", OTA_REQUEST_INTERFACE, "/request",
                          {"operation": "Update", "uuid": U, "url": "https://x/ota.bin"})
    assert [r.key[2] for r in records] == ["Acknowledged"]  # answered in the handler, as the runtime does
    assert scheduler.serve(fleet.clock.monotonic()) == 1  # the request woke it: its next input is scheduled
    due = scheduler.earliest()
    assert due is not None and due > fleet.clock.monotonic()
    fleet.clock.set(due)
    scheduler.serve(due)
    assert len(records) > 1 and records[1].key[2] == "Downloading" and not result.ready()


def test_an_idle_device_waits_for_its_next_operation_until_the_plan_is_over() -> None:
    """The lazy plan hands a device its next operation a look-ahead before it is due: a self-driven device
    with nothing due is not done while the plan's cursor may still hand it actions."""
    fleet, _, scheduler, devices, records = _rig({"a": [_publish(1.0, 0)]})
    fleet.pending.add(0)
    device = devices["a"]
    result = scheduler.add(device)
    fleet.clock.set(START + 1.0)
    scheduler.serve(fleet.clock.monotonic())
    assert len(records) == 1 and not result.ready()  # its first operation done, the plan not over
    device.extend_plan([_publish(2.0, 1)])  # the feeder: wakes it in the scheduler
    fleet.clock.set(START + 2.0)
    scheduler.serve(fleet.clock.monotonic())
    assert len(records) == 2 and not result.ready()
    fleet.pending.clear()  # the cursor is exhausted for this device; the feeder wakes it
    device.wake()
    scheduler.serve(fleet.clock.monotonic())
    assert result.ready()


def test_the_started_scheduler_sleeps_until_each_due_point_or_a_wake() -> None:
    """The scheduler's own greenlet on a real clock: it sleeps until the earliest due point (a libev timer
    that sets its wake event), serves it, and a wake during that sleep serves a woken device at once."""
    clock = MonotonicClock()
    fleet = Fleet(clock=clock, run_start=clock.monotonic())  # type: ignore[arg-type]
    broker = MemoryBroker(clock=clock)
    records: list[SendRecord] = []
    actions = [_publish(0.02 * (k + 1), k) for k in range(3)]
    device = VirtualDevice(0, "a", broker("a"), clock, run_start=fleet.run_start, firmware=OLD,
                           actions=actions, send_sink=records.append)
    device.start()
    idle = VirtualDevice(1, "b", broker("b"), clock, run_start=fleet.run_start, firmware=OLD,
                         send_sink=records.append)
    idle.start()
    fleet.pending.add(1)  # "b" waits for an operation the plan's cursor may still hand it
    scheduler = DeviceScheduler(fleet)
    first, second = scheduler.add(device), scheduler.add(idle)
    scheduler.start()
    assert first.wait(timeout=30) is None and first.ready()  # served its three due points and finished
    assert [r.key[3] for r in records] == [0, 1, 2]
    assert all(r.sent is not None and r.sent >= r.intended for r in records)  # none served before its time
    assert not second.ready()
    fleet.pending.clear()
    idle.wake()  # the scheduler is asleep with no due point: the wake alone brings it back
    assert second.wait(timeout=30) is None and second.ready()
    scheduler.stop()
