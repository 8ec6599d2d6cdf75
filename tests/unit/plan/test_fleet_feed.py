"""ProcessFleet plays the lazy plan: the cursor is fed a look-ahead at a time, each device is handed its next
operations before they are due, every planned event is published exactly once, and a device's driver may stop
only once the plan is over for it. Virtual clock, memory transport, the feeder called by hand."""

from __future__ import annotations

from dataclasses import replace

from simulator.clock import VirtualClock
from simulator.events import ActionKind
from simulator.generator.fleet import FEED_SLICE_US, LOOKAHEAD_US, FleetCallbacks, ProcessFleet
from simulator.plan import build_plan
from simulator.records import SendRecord
from tests.unit.plan.test_fleet_plan import scenario
from tests.unit.plan.test_ramp_fleet import TARGET


def play(worker_index: int = 0, worker_count: int = 1) -> tuple[ProcessFleet, list[SendRecord], list[int]]:
    sc = replace(scenario(devices=6, duration=60.0), transport="memory")
    sent: list[SendRecord] = []
    fleet = ProcessFleet(sc, build_plan(sc), TARGET, VirtualClock(start=100.0), worker_index=worker_index,
                         worker_count=worker_count, callbacks=FleetCallbacks(on_record=sent.append))
    devices = [fleet.create(i) for i in fleet.indexes]
    for device in devices:
        device.start()
    fleet.begin()  # the first look-ahead is handed over before any device runs
    clock = fleet.clock
    assert isinstance(clock, VirtualClock)
    horizons: list[int] = []
    while not (fleet.cursor.done and all(d.next_due() is None for d in devices)):
        horizons.append(fleet.cursor.horizon_us)
        for device in devices:
            device.run_due()
        clock.advance(0.25)
        fleet.feed()
    assert all(fleet.plan_over(i) for i in fleet.indexes)
    fleet.stop()
    return fleet, sent, horizons


def test_every_planned_event_is_published_once_from_a_look_ahead() -> None:
    fleet, sent, horizons = play()
    keys = [r.key for r in sent]
    assert len(keys) == len(set(keys)) == fleet.plan.planned_events > 0
    assert all(r.error is None for r in sent)
    # Lazy: at the start only the look-ahead was generated, not the 60 s plan; then a look-ahead past now.
    assert horizons[:3] == [LOOKAHEAD_US, LOOKAHEAD_US + 250_000, LOOKAHEAD_US + 500_000]
    assert len(fleet.cursor.starts) > 0  # the funnel's planned starts of the kept operations


def test_workers_publish_the_whole_plan_between_them_and_agree_on_its_digest() -> None:
    keys: set[tuple[object, ...]] = set()
    digests = set()
    planned = 0
    for worker in range(2):
        fleet, sent, _ = play(worker, 2)
        keys |= {r.key for r in sent}
        digests.add(fleet.cursor.finish().digest)
        planned = fleet.plan.planned_events
    whole = build_plan(replace(scenario(devices=6, duration=60.0), transport="memory"))
    assert len(keys) == planned == sum(1 for s in whole.steps() if s is not None for a in s.actions
                                       if a.kind is ActionKind.PUBLISH)
    assert len(digests) == 1


def test_the_feeder_generates_in_slices_and_hands_over_the_same_actions() -> None:
    """The feeder yields between slices of FEED_SLICE_US of plan (planning costs CPU the devices due meanwhile
    would wait for); sliced or whole, every device holds the same actions at the same horizon."""
    fleets = []
    for _ in range(2):
        sc = replace(scenario(devices=6, duration=60.0), transport="memory")
        fleet = ProcessFleet(sc, build_plan(sc), TARGET, VirtualClock(start=100.0),
                             callbacks=FleetCallbacks(on_record=lambda _r: None))
        for i in fleet.indexes:
            fleet.create(i).start()
        fleet.begin()
        clock = fleet.clock
        assert isinstance(clock, VirtualClock)
        clock.advance(1.0)
        fleets.append(fleet)
    whole, sliced = fleets
    pauses: list[int] = []
    whole.feed()
    sliced.feed(pause=lambda: pauses.append(sliced.cursor.horizon_us))
    assert len(pauses) == 1_000_000 // FEED_SLICE_US - 1  # a second of new plan in 20 ms slices, none after
    assert pauses == sorted(pauses) and whole.cursor.horizon_us == sliced.cursor.horizon_us
    assert [d._planned[d._next:] for d in whole.devices.values()] == \
        [d._planned[d._next:] for d in sliced.devices.values()]
