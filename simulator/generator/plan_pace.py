"""Generating the plan on a gevent loop without blocking it (issue 14: hour-long and many-worker runs).

Planning costs CPU: 66 to 300 us per step (one operation and its actions; measured with `advance(END_US, 64)`
slices under `nice -n 19`: 66 us for bench/soak_memory.py's 8-event campaign shape, 297 us for
bench/scenarios/fleet_scale.yaml's ~15 events, 275 us for scenarios/soak.yaml). Generated in one go, a catch-up
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

__all__ = ["PLAN_SLICE_STEPS", "advance_plan", "finish_plan", "pause"]

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
