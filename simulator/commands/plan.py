"""`fleetsim plan SCENARIO`: print the planned stream of actions as JSON lines, without running anything.

One line per action, sorted by (offset, device, order within the device):
`{"device_id","interface","kind","offset_ms","path","payload"}` with sorted keys and compact separators, so
the same scenario and seed give byte-identical output (docs/design.md principle 9). offset_ms = offset_us / 1000
(a pure function of the integer offset, so it prints the same everywhere); payload is the value
(REBOOT: {"duration_ms": ...}). A summary line goes to stderr. Streamed: the plan is generated, printed and
counted in one pass, in memory O(devices) (simulator.plan_cursor), however long the scenario.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from typing import TextIO

from simulator.events import ActionKind, PlannedAction
from simulator.plan import FleetPlan
from simulator.plan_steps import PlanStep, cut_step

__all__ = ["HELP", "add_arguments", "format_action", "run", "write_plan"]

HELP = "print the planned actions of a scenario as JSON lines (deterministic for a seed)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", metavar="SCENARIO", help="scenario YAML file")
    parser.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    parser.add_argument("--devices", type=int, default=None, help="override the fleet size")


def format_action(plan: FleetPlan, action: PlannedAction) -> str:
    """One JSON line (no newline)."""
    payload: object = action.value
    if action.kind is ActionKind.REBOOT:
        payload = {"duration_ms": action.duration_us / 1000}
    record = {
        "device_id": plan.device_ids[action.device],
        "offset_ms": action.offset_us / 1000,
        "kind": str(action.kind),
        "interface": action.interface,
        "path": action.path,
        "payload": payload,
    }
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def write_plan(plan: FleetPlan, out: TextIO, steps: Iterable[PlanStep | None] | None = None) -> int:
    """Write every action of `plan` (of `steps`, default a fresh pass) to `out`; returns the number of lines."""
    lines = 0
    for action, _order in plan.stream(steps):
        out.write(format_action(plan, action))
        out.write("\n")
        lines += 1
    return lines


def run(args: argparse.Namespace) -> int:
    from simulator.scenario.loader import load_scenario

    overrides: dict[str, object] = {}
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.devices is not None:
        overrides["devices"] = args.devices
    scenario = load_scenario(args.scenario, overrides)
    from simulator.run.plans import bound_plan, plan_for

    plan = plan_for(scenario)
    bounds = bound_plan(plan, scenario.duration, scenario.graceful_stop).plan.bounds
    assert bounds is not None
    cut_ops = cut_events = 0

    def counted() -> Iterator[PlanStep]:
        """One pass: the plan's steps streamed out, counted by its cursor, and the run's cut counted here."""
        nonlocal cut_ops, cut_events
        for step in plan.cursor.drain():
            cut = cut_step(step, bounds)
            cut_ops += sum(1 for op in cut.operations if op.end_us > bounds.limit_us)
            cut_events += cut.cut_events
            yield step

    lines = write_plan(plan, sys.stdout, counted())
    totals = plan.totals
    print(
        f"fleetsim plan: {scenario.name}: seed {plan.seed}, {len(plan.device_ids)} devices, "
        f"{totals.operations} operations ({totals.dropped} dropped, {totals.in_flight} in flight at the cut), "
        f"{totals.planned_events} OTAEvents, {lines} actions; a run cuts {cut_ops} operations "
        f"({cut_events} OTAEvents) still running at duration + graceful_stop",
        file=sys.stderr,
    )
    return 0
