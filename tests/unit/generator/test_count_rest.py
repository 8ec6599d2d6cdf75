"""Counting the rest of a plan after an early stop (simulator.generator.plan_pace.count_rest): progress lines at
most every COUNT_REPORT_S of its clock, and a stop (a second Ctrl-C) that leaves the count unfinished at once."""

from __future__ import annotations

from simulator.generator.plan_pace import count_rest
from simulator.plan import FleetPlan, build_plan
from tests.unit.plan.test_fleet_plan import fixed_schedule, scenario


def _plan(duration: float = 400.0) -> FleetPlan:
    return build_plan(scenario(devices=8, duration=duration), schedule_fn=fixed_schedule)


def test_the_count_reports_its_progress_at_most_every_few_seconds_and_gives_the_whole_totals() -> None:
    whole = _plan().totals
    plan = _plan()
    now = [0.0]
    slices: list[int] = []

    def tick() -> None:  # each slice takes 1 s of the fake clock
        slices.append(plan.cursor.steps_done)
        now[0] += 1.0

    lines: list[str] = []
    assert count_rest(plan.cursor, stop=lambda: False, report=lines.append, plan_s=400.0, clock=lambda: now[0],
                      every_s=5.0, yield_=tick, slice_steps=4)
    assert plan.cursor.done and plan.cursor.finish() == whole
    assert len(slices) > 10
    assert len(lines) == len(slices) // 5  # one line per 5 s of clock, not one per slice
    assert all(line.startswith("counted ") and line.endswith(" of ~400 s of plan") for line in lines)
    counted = [int(line.split()[1]) for line in lines]
    assert counted == sorted(counted) and 0 < counted[-1] <= 400


def test_a_second_ctrl_c_stops_the_count_where_it_is() -> None:
    plan = _plan()
    signals = [1]

    def tick() -> None:
        if plan.cursor.steps_done >= 12:
            signals.append(2)  # the operator's second Ctrl-C, between two slices

    assert not count_rest(plan.cursor, stop=lambda: len(signals) >= 2, report=lambda line: None, plan_s=400.0,
                          clock=lambda: 0.0, yield_=tick, slice_steps=4)
    assert not plan.cursor.done
    assert plan.cursor.steps_done == 12  # not one slice more
    assert plan.cursor.known_totals() is None  # nothing claims to be the whole plan's totals
