"""The plan generated on the loop in slices (issue 14: a master's or a worker's loop held for seconds missed
Locust's heartbeats): at most a slice of steps between two yields, whatever the catch-up, and the same plan as
generated in one go. Counted in steps, never in wall-clock time."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

import pytest

from simulator.clock import VirtualClock
from simulator.generator import fleet as fleet_module
from simulator.generator.fleet import LOOKAHEAD_US, FleetCallbacks, ProcessFleet
from simulator.generator.plan_pace import advance_plan, finish_plan
from simulator.plan import build_plan
from simulator.plan_cursor import PlanCursor
from simulator.run.plans import bound_plan
from tests.unit.plan.test_fleet_plan import scenario
from tests.unit.plan.test_lazy_plan import synthetic
from tests.unit.plan.test_ramp_fleet import TARGET


def cursor() -> PlanCursor:
    sc = synthetic("constant-long-cut")
    c = bound_plan(build_plan(sc), sc.duration, sc.graceful_stop).plan.cursor
    c.keep(range(sc.fleet.devices))
    return c


def test_advance_plan_yields_between_slices_of_at_most_slice_steps() -> None:
    sliced, whole = cursor(), cursor()
    at_yield: list[int] = []
    fed: list[int] = []
    advance_plan(sliced, 30_000_000, on_fed=fed.extend, yield_=lambda: at_yield.append(sliced.steps_done),
                 slice_steps=2)
    expected = whole.advance(30_000_000)
    assert fed == expected != [] and sliced.reached(30_000_000) and sliced.horizon_us == whole.horizon_us
    slices = [b - a for a, b in zip([0, *at_yield], [*at_yield, sliced.steps_done], strict=True)]
    assert len(at_yield) >= 5 and max(slices) <= 2
    assert not [n for n in slices[:-1] if n != 2]  # full slices until the last


def test_finish_plan_counts_the_whole_plan_in_slices() -> None:
    sliced, whole = cursor(), cursor()
    yields: list[int] = []
    totals = finish_plan(sliced, yield_=lambda: yields.append(sliced.steps_done), slice_steps=8)
    assert totals == whole.finish() and sliced.done
    assert len(yields) == -(-whole.steps_done // 8) - 1  # no yield after the last slice
    assert yields == list(range(8, whole.steps_done, 8))


def test_the_feeder_catches_up_after_a_stall_in_bounded_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """A feeder stalled 30 s lags the plan by 30 s: it used to generate the whole lag in its first slice."""
    monkeypatch.setattr(fleet_module, "PLAN_SLICE_STEPS", 2)
    sc = replace(scenario(devices=6, duration=60.0), transport="memory")
    fleet = ProcessFleet(sc, build_plan(sc), TARGET, VirtualClock(start=100.0),
                         callbacks=FleetCallbacks(on_record=lambda _r: None))
    for i in fleet.indexes:
        fleet.create(i).start()
    fleet.begin()
    clock = fleet.clock
    assert isinstance(clock, VirtualClock)
    clock.advance(30.0)
    steps_at_yield: list[int] = [fleet.cursor.steps_done]
    fleet.feed(pause=lambda: steps_at_yield.append(fleet.cursor.steps_done))
    steps_at_yield.append(fleet.cursor.steps_done)
    slices = [b - a for a, b in pairwise(steps_at_yield)]
    assert fleet.cursor.reached(30_000_000 + LOOKAHEAD_US)
    assert sum(slices) >= 10 and max(slices) <= 2  # 30 s of plan, 2 steps at most between two yields
    fleet.stop()

