"""Generating the plan on a gevent loop without blocking it (issue 14: hour-long and many-worker runs).

Planning costs CPU: 66 to 300 us per step when this was written (one operation and its actions; measured with
`advance(END_US, 64)` slices under `nice -n 19`: 66 us for bench/soak_memory.py's 8-event campaign shape, 297 us
for bench/scenarios/fleet_scale.yaml's ~15 events, 275 us for scenarios/soak.yaml); issue 16's planner cuts
brought a 32-action rebooting operation to 182 us (bench/plan_cost.py, n = 3, commit b6c847f), so the slice
below is now conservative. Generated in one go, a catch-up
after a stall or the rest of a 10 M-event plan at an early stop held the loop for seconds to minutes: a worker
stopped answering its master's heartbeats (Locust marks it missing after 3 missed 1 s heartbeats) and the
master stopped reading them. Here the cursor (pure: simulator.plan_cursor) generates at most PLAN_SLICE_STEPS
steps at a time and the loop runs between two slices.
"""

from __future__ import annotations

from collections.abc import Callable

import gevent

from simulator.plan_cursor import END_US, PlanCursor
from simulator.plan_steps import PlanTotals

__all__ = ["COUNT_REPORT_S", "PLAN_SLICE_STEPS", "advance_plan", "count_rest", "finish_plan", "pause"]

# Steps generated between two yields: 64 x 300 us = ~20 ms of CPU for the costliest shape measured above, well
# under the 50 ms a loop may be held (and far under Locust's 1 s heartbeat); a yield costs ~10 us.
PLAN_SLICE_STEPS = 64


def pause() -> None:
    gevent.sleep(0)  # sleep-ok: lets the scheduler and the I/O loop (heartbeats) run between two slices


def advance_plan(cursor: PlanCursor, until_us: int, on_fed: Callable[[list[int]], None] | None = None,
                 yield_: Callable[[], None] = pause, slice_steps: int = PLAN_SLICE_STEPS) -> None:
    """`cursor.advance(until_us)` in slices of `slice_steps` steps with `yield_()` between two of them;
    `on_fed` gets each slice's fed devices (PlanCursor.advance) as they come."""
    while True:
        fed = cursor.advance(until_us, slice_steps)
        if on_fed is not None and fed:
            on_fed(fed)
        if cursor.reached(until_us):
            return
        yield_()


def finish_plan(cursor: PlanCursor, yield_: Callable[[], None] = pause,
                slice_steps: int = PLAN_SLICE_STEPS) -> PlanTotals:
    """The plan generated to its end in slices (`cursor.finish()` without holding the loop): its exact totals."""
    advance_plan(cursor, END_US, yield_=yield_, slice_steps=slice_steps)
    return cursor.finish()


# At most one progress line per this many seconds while the rest of a plan is counted after a stop (s): the
# operator sees what the wait is without a line per slice (a slice is ~20 ms).
COUNT_REPORT_S = 5.0


def count_rest(cursor: PlanCursor, *, stop: Callable[[], bool], report: Callable[[str], None],
               plan_s: float, clock: Callable[[], float], every_s: float = COUNT_REPORT_S,
               yield_: Callable[[], None] = pause, slice_steps: int = PLAN_SLICE_STEPS) -> bool:
    """The rest of the plan generated for its totals (`finish_plan`), unless `stop()` turns true between two
    slices (a second Ctrl-C): then the cursor is left where it is and False is returned, so the caller writes
    what it knows (the totals are not exact: nothing is made up from a part of the plan). `report` gets a line
    "counted N of ~M s of plan" at most every `every_s` seconds of `clock` (monotonic seconds); `plan_s` is the
    plan's length for that line (the run's duration: the plan's last arrival is before it)."""
    last = clock()

    def between() -> None:
        nonlocal last
        now = clock()
        if now - last >= every_s:
            last = now
            report(f"counted {max(0, cursor.horizon_us) / 1e6:.0f} of ~{plan_s:.0f} s of plan")
        yield_()

    while not cursor.done:
        if stop():
            return False
        cursor.advance(END_US, slice_steps)
        if not cursor.done:
            between()
    cursor.finish()
    return True
