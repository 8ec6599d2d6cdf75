"""A worker's funnel knows the planned start of its own devices' operations only (issue 14: one entry per
operation of the whole plan on every worker grew with the run's operations): the live books read the starts
the plan's cursor keeps for the devices this process plays (simulator.plan_cursor.PlannedStarts)."""

from __future__ import annotations

from simulator.generator.finish import live_operation_starts, operation_starts
from simulator.plan import build_plan
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
