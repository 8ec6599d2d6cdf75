"""The cursor's bounded work (issue 14, no long blocking of the loop): `advance` with a step budget generates
at most that many steps and, call after call, the very plan of one unbudgeted advance; a process that stops
early reads its cut and its digest from what it generated, without generating one more step, and the digest
of that part is checked against another process's whole plan."""

from __future__ import annotations

from dataclasses import replace

import pytest

from simulator.plan import build_plan
from simulator.plan_cursor import END_US, PlanCursor
from simulator.run.plans import bound_plan
from tests.unit.plan.test_lazy_plan import synthetic

SCENARIO = synthetic("constant-long-cut")  # 40 operations, some cut at duration + graceful_stop


def bounded_cursor(seed: int = 11) -> PlanCursor:
    sc = replace(SCENARIO, seed=seed)
    cursor = bound_plan(build_plan(sc), sc.duration, sc.graceful_stop).plan.cursor
    cursor.keep(range(sc.fleet.devices))
    return cursor


def test_a_budget_bounds_the_steps_of_one_advance_and_changes_nothing_else() -> None:
    whole, sliced = bounded_cursor(), bounded_cursor()
    fed_whole = whole.advance(END_US)
    fed_sliced: list[int] = []
    calls = 0
    while not sliced.reached(END_US):
        before = sliced.steps_done
        fed_sliced += sliced.advance(END_US, 3)
        assert sliced.steps_done - before <= 3
        calls += 1
    assert calls >= whole.steps_done // 3 > 5
    assert fed_sliced == fed_whole
    assert sliced.finish() == whole.finish()
    assert all(repr(sliced.take(i)) == repr(whole.take(i)) for i in range(SCENARIO.fleet.devices))


def test_out_of_budget_the_horizon_stops_before_the_first_step_not_generated() -> None:
    cursor = bounded_cursor()
    plan_steps = [s for s in build_plan(SCENARIO).steps() if s is not None]
    cursor.advance(20_000_000, 4)
    assert cursor.steps_done == 4 and not cursor.reached(20_000_000)
    assert plan_steps[3].at_us <= cursor.horizon_us < plan_steps[4].at_us
    cursor.advance(20_000_000, 0)  # no budget: nothing generated
    assert cursor.steps_done == 4


def test_the_stop_path_reads_what_was_generated_and_generates_nothing() -> None:
    worker = bounded_cursor()
    worker.advance(12_000_000)
    steps, horizon = worker.steps_done, worker.horizon_us
    so_far = worker.progress()
    mark_steps, mark = worker.digest_mark()
    assert (worker.steps_done, worker.horizon_us, worker.done) == (steps, horizon, False)
    assert 0 < so_far.operations == steps and mark_steps <= steps < 2 * mark_steps
    # The master generated the whole plan (its end-of-run count): the worker's part is its plan's first steps.
    master = bounded_cursor()
    totals = master.finish()
    assert master.digest_agrees(mark_steps, mark, whole=False)
    assert set(so_far.cut_ids) <= set(totals.cut_ids) and so_far.cut_operations <= totals.cut_operations
    assert not bounded_cursor(seed=12).digest_agrees(mark_steps, mark, whole=False)  # another plan: refused
    other = bounded_cursor(seed=12)
    other.finish()
    assert not other.digest_agrees(mark_steps, mark, whole=False)


def test_a_whole_plan_agrees_only_with_a_whole_plan_of_the_same_length() -> None:
    worker, master = bounded_cursor(), bounded_cursor()
    worker.finish()
    steps, digest = worker.digest_mark()
    assert steps == worker.steps_done and digest == worker.finish().digest
    assert not master.digest_agrees(steps, digest, whole=True)  # the master has not counted its plan yet
    master.finish()
    assert master.digest_agrees(steps, digest, whole=True)
    # A plan that is the master's first steps only is not the master's plan.
    prefix = bounded_cursor()
    prefix.advance(END_US, 16)
    assert not master.digest_agrees(prefix.steps_done, prefix.digest_mark()[1], whole=True)
    assert master.digest_agrees(*prefix.digest_mark(), whole=False)


def test_cut_so_far_is_the_cut_once_the_plan_is_generated() -> None:
    sc = SCENARIO
    bounded = bound_plan(build_plan(sc), sc.duration, sc.graceful_stop)
    bounded.plan.cursor.advance(1_000_000)
    early = bounded.cut_so_far()
    assert not bounded.plan.cursor.done and early.cut_operations <= bounded.cut.cut_operations
    assert bounded.cut_so_far() == bounded.cut and bounded.cut.cut_operations > 0


def test_a_process_that_stopped_keeps_no_action_of_the_rest() -> None:
    cursor = bounded_cursor()
    cursor.advance(5_000_000)
    cursor.stop_keeping()
    cursor.finish()
    assert all(cursor.take(i) == [] for i in range(SCENARIO.fleet.devices))


def test_pulling_the_first_step_ahead_still_lets_a_process_choose_its_devices() -> None:
    sc = replace(SCENARIO, fleet=replace(SCENARIO.fleet, ramp=synthetic("ramp").fleet.ramp))  # drops at first
    cursor = build_plan(sc).cursor
    cursor.advance(-1)  # arrivals drawn (a worker does this in a thread), nothing generated
    assert cursor.steps_done == 0 and cursor.progress().dropped > 0
    cursor.keep([0, 1])
    cursor.advance(END_US, 1)
    with pytest.raises(RuntimeError, match="after the plan started"):
        cursor.keep([2])
