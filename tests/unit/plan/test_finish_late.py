"""A generator behind its plan at the plan's end: the fleet finishes what it started, bounded and counted
(ProcessFleet.behind / finish_late). Virtual clock, memory transport."""

from __future__ import annotations

from simulator.clock import VirtualClock
from tests.unit.plan.test_ramp_fleet import fleet_for


def test_devices_behind_get_the_bounded_overrun_and_it_is_counted() -> None:
    fleet = fleet_for(())
    devices = [fleet.create(i) for i in fleet.indexes]
    for device in devices:
        device.start()
    fleet.begin()
    clock = fleet.clock
    assert isinstance(clock, VirtualClock)
    assert fleet.behind() == len(devices)  # nothing played yet: every device still has its plan due
    waited = fleet.finish_late(3.0, sleep=clock.advance)
    assert 3.0 <= waited < 3.5 and fleet.counters()["overrun_ms"] == round(waited * 1000)
    fleet.stop()


def test_a_fleet_on_schedule_does_not_wait() -> None:
    fleet = fleet_for(())
    devices = [fleet.create(i) for i in fleet.indexes]
    for device in devices:
        device.start()
    fleet.begin()
    clock = fleet.clock
    assert isinstance(clock, VirtualClock)
    while (due := min((d for d in (dev.next_due() for dev in devices) if d is not None), default=None)):
        clock.set(max(due, clock.monotonic()))
        for device in devices:
            device.run_due()
    assert fleet.behind() == 0
    assert fleet.finish_late(3.0, sleep=clock.advance) == 0.0 and "overrun_ms" not in fleet.counters()
    fleet.stop()


def test_finish_late_stops_waiting_when_cancelled() -> None:
    fleet = fleet_for(())
    for i in fleet.indexes:
        fleet.create(i).start()
    fleet.begin()
    clock = fleet.clock
    assert isinstance(clock, VirtualClock)
    polls: list[float] = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        clock.advance(seconds)

    assert fleet.finish_late(30.0, sleep=sleep, cancelled=lambda: len(polls) >= 2) < 1.0 and len(polls) == 2
    fleet.stop()
