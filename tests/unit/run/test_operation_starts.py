"""A worker's funnel knows the planned start of its own devices' operations only (issue 14: one entry per
operation of the whole plan on every worker grew with the run's operations): the live books read the starts
the plan's cursor keeps for the devices this process plays (simulator.plan_cursor.PlannedStarts)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from simulator.generator.finish import STARTS_SLACK_S, live_operation_starts, operation_starts
from simulator.plan import PlanStep, build_plan
from tests.unit.plan.test_fleet_plan import fixed_schedule, scenario


def test_operation_starts_of_a_workers_partition_only() -> None:
    plan = build_plan(scenario(devices=6), schedule_fn=fixed_schedule)
    every = operation_starts(plan, 1_000.0)
    worker = build_plan(scenario(devices=6), schedule_fn=fixed_schedule)
    worker.cursor.keep(range(0, 6, 2))  # worker 0 of 2
    worker.cursor.advance(10**12)
    mine = frozenset(plan.device_ids[i] for i in range(0, 6, 2))
    part = dict(live_operation_starts(worker, 1_000.0))
    assert part == {op: at for op, at in every.items() if op[0] in mine}
    assert 0 < len(part) < len(every) == len(plan.operations)


def test_starts_for_the_books_operations_stop_at_the_last_of_them() -> None:
    """Books built at the end from a send log (generator.finish) read the starts of the operations they hold
    only: the pass over the plan ends with the last of them instead of running the whole plan (an early-stopped
    long run), and holds those operations' starts only."""
    plan = build_plan(scenario(devices=6, duration=200.0), schedule_fn=fixed_schedule)
    every = operation_starts(plan, 1_000.0)
    total = sum(1 for _ in plan.source())
    pulled: list[PlanStep | None] = []

    def counting() -> Iterator[PlanStep | None]:
        for step in plan.source():
            pulled.append(step)
            yield step

    counted = replace(plan, source=counting)
    played = list(every)[:3]  # the books hold the run's first three operations
    last_event = max(every[op] for op in played) + 0.5  # first events leave at or after the planned start
    assert operation_starts(counted, 1_000.0, played, last_event) == {op: every[op] for op in played}
    assert len(pulled) < 10 < total
    # An operation the plan does not have: the pass ends STARTS_SLACK_S of plan after the last first event.
    pulled.clear()
    stranger = ("nobody", "no-uuid")
    assert operation_starts(counted, 1_000.0, [*played, stranger], last_event) == {op: every[op] for op in played}
    assert all(s is None or s.at_us / 1e6 <= last_event - 1_000.0 + STARTS_SLACK_S for s in pulled[:-1])
    assert len(pulled) < total
    assert operation_starts(counted, 1_000.0, []) == {}
