"""Nothing lost to the generator's own saturation: a reboot drains its device's unacknowledged publishes first
(bounded, counted), and an operation that would start too late is dropped whole and counted, never sent.
Virtual clock, memory transport."""

from __future__ import annotations

import numpy as np

from simulator.device import LATE_OPERATION_S
from simulator.events import OTA_EVENT_INTERFACE, ActionKind
from simulator.generator.fleet import REBOOT_DRAIN_S, drain_before_reboot
from simulator.lifecycle.plans import plan_random
from tests.unit.device.test_virtual_device import NEW, OLD, Rig, U, V, spec

REBOOTING_AT = 100.0 + 20.0  # spec(): download 10 s + deploy 10 s, then Rebooting and the reboot


def _ota_publishes(actions: list) -> int:  # type: ignore[type-arg]
    return sum(1 for a in actions if a.kind is ActionKind.PUBLISH and a.interface == OTA_EVENT_INTERFACE)


def test_reboot_waits_for_in_flight_acks_then_loses_nothing() -> None:
    plan = plan_random(0, spec(), np.random.default_rng(0), U, 0, 1.0, OLD, NEW)
    rig = Rig(list(plan.actions), auto_ack=False)
    rig.device.start()
    rig.transport.ack()  # the startup properties
    rig.clock.set(REBOOTING_AT)
    rig.device.run_due(hold_reboot=True)
    pending = rig.device.pending_acks
    assert pending > 0 and rig.device.reboot_due() and rig.transport.connected  # held: acks in flight
    polls: list[float] = []

    def sleep(seconds: float) -> None:  # the broker acks everything after the third poll
        polls.append(seconds)
        rig.clock.advance(seconds)
        if len(polls) == 3:
            rig.transport.ack()

    drain_before_reboot(rig.device, rig.clock, sleep)
    assert len(polls) == 3 and rig.device.pending_acks == 0
    rig.device.run_due()  # now the reboot
    assert not rig.transport.connected and rig.device.counters.reboots == 1
    counters = rig.device.counters
    assert (counters.reboot_drain_waits, counters.reboot_drain_timeouts) == (1, 0)
    assert all(r.error is None for r in rig.records) and len(rig.records) == _ota_publishes(
        [a for a in plan.actions if a.offset_us <= 20_000_000])


def test_drain_is_bounded_and_its_timeout_counted() -> None:
    plan = plan_random(0, spec(), np.random.default_rng(0), U, 0, 1.0, OLD, NEW)
    rig = Rig(list(plan.actions), auto_ack=False)
    rig.device.start()
    rig.clock.set(REBOOTING_AT)
    rig.device.run_due(hold_reboot=True)
    pending = rig.device.pending_acks
    drain_before_reboot(rig.device, rig.clock, rig.clock.advance)  # the broker never acks
    assert rig.clock.monotonic() - REBOOTING_AT >= REBOOT_DRAIN_S
    assert rig.device.counters.reboot_drain_timeouts == 1
    rig.device.run_due()
    # Counted where they stand: each unacknowledged publish is a record with its reason, none vanishes.
    assert [r.error for r in rig.records[-pending:]] == ["disconnected"] * pending


def _play_late(rig: Rig) -> None:
    """Rig.run_all for a device already behind: the clock never goes back to an action's planned time."""
    while (due := rig.device.next_due()) is not None:
        rig.clock.set(max(due, rig.clock.monotonic()))
        rig.device.run_due()


def _two_operations() -> tuple[Rig, int, int]:
    first = plan_random(0, spec(), np.random.default_rng(0), U, 0, 1.0, OLD, NEW)
    second = plan_random(0, spec(), np.random.default_rng(1), V, 60_000_000, 1.0, NEW, NEW)
    rig = Rig([*first.actions, *second.actions])
    rig.device.start()
    return rig, _ota_publishes(list(first.actions)), _ota_publishes(list(second.actions))


def test_operation_too_late_is_dropped_whole_and_counted() -> None:
    rig, first_events, second_events = _two_operations()
    rig.clock.set(100.0 + 6.0)  # the first operation was due at 0: 6 s late > a 5 s bound
    assert rig.device.start_late_operation(max_lag_s=5.0)
    counters = rig.device.counters
    assert (counters.late_operations, counters.dropped_operations, counters.dropped_events) == (1, 1, first_events)
    assert rig.device.next_due() == 100.0 + 60.0  # nothing of the first operation is left, its reboot neither
    _play_late(rig)
    assert {r.key[1] for r in rig.records} == {V} and len(rig.records) == second_events
    assert counters.reboots == 1 and all(r.error is None for r in rig.records)


def test_late_operation_within_the_bound_is_played_and_counted_late() -> None:
    rig, first_events, second_events = _two_operations()
    rig.clock.set(100.0 + LATE_OPERATION_S + 0.5)
    assert not rig.device.start_late_operation(max_lag_s=5.0)
    _play_late(rig)
    counters = rig.device.counters
    assert (counters.late_operations, counters.dropped_operations) == (1, 0)
    assert len(rig.records) == first_events + second_events


def test_on_time_operation_is_neither_late_nor_dropped() -> None:
    rig, first_events, second_events = _two_operations()
    judged = 0
    while (due := rig.device.next_due()) is not None:  # on time: every action at its planned time
        rig.clock.set(due)
        judged += 1
        assert not rig.device.start_late_operation(max_lag_s=0.0)
        rig.device.run_due()
    assert judged > 2  # both operations, reboots included, each due point judged
    assert rig.device.counters.late_operations == 0 and len(rig.records) == first_events + second_events
