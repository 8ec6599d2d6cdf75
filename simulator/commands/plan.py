"""`fleetsim plan SCENARIO`: print the planned stream of actions as JSON lines, without running anything.

One line per action, sorted by (offset, device, order within the device):
`{"device_id","interface","kind","offset_ms","path","payload"}` with sorted keys and compact separators, so
the same scenario and seed give byte-identical output (docs/design.md principle 9). offset_ms = offset_us / 1000
(a pure function of the integer offset, so it prints the same everywhere); payload is the value
(REBOOT: {"duration_ms": ...}). A summary line goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from simulator.events import ActionKind, PlannedAction
from simulator.plan import FleetPlan

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


def write_plan(plan: FleetPlan, out: TextIO) -> int:
    """Write every action of `plan` to `out`; returns the number of lines."""
    lines = 0
    for action, _order in plan.stream():
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
    lines = write_plan(plan, sys.stdout)
    cut = bound_plan(plan, scenario.duration, scenario.graceful_stop).cut
    print(
        f"fleetsim plan: {scenario.name}: seed {plan.seed}, {len(plan.device_ids)} devices, "
        f"{len(plan.operations)} operations ({plan.dropped} dropped, {plan.in_flight} in flight at the cut), "
        f"{plan.planned_events} OTAEvents, {lines} actions; a run cuts {cut.cut_operations} operations "
        f"({cut.cut_events} OTAEvents) still running at duration + graceful_stop",
        file=sys.stderr,
    )
    return 0
