"""The one production place a plan is built, and the run's bounds on it (duration + graceful_stop).

A scenario and its seed are the plan's recipe: every process (master, workers, `fleetsim plan`, replay
recording) calls `plan_for`, so the plan is the same byte for byte wherever it is built (`plan_digest`
proves it across processes). `bound_plan` cuts the plan at the run's end *before* the run starts, k6-style:
operations still running at `duration` may go on for `graceful_stop` seconds; actions later than that are
removed and counted as cut (with a reason), so the announced end is the true end and nothing is lost silently.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from simulator.events import OTA_EVENT_INTERFACE, ActionKind, PlannedAction
from simulator.plan import FleetPlan, build_plan
from simulator.scenario.model import Scenario

__all__ = ["DRAIN_S", "BoundedPlan", "PlanCut", "bound_plan", "plan_digest", "plan_for"]

# After the last played action: QoS 2 acks and collector arrivals settle (loopback: < 100 ms).
DRAIN_S = 2.0
CUT_REASON = "still running at duration + graceful_stop"


@dataclass(frozen=True)
class PlanCut:
    """What the run's bounds removed from the plan (all counts; nothing here is ever sent)."""

    duration_s: float
    graceful_stop_s: float
    in_flight_at_duration: int  # operations still running at `duration`
    cut_operations: int  # of those, still running at duration + graceful_stop: their tail is not played
    cut_events: int  # OTAEvent publishes removed with those tails
    reason: str = CUT_REASON

    def to_jsonable(self) -> dict[str, object]:
        return {"duration_s": self.duration_s, "graceful_stop_s": self.graceful_stop_s,
                "in_flight_at_duration": self.in_flight_at_duration, "operations": self.cut_operations,
                "events": self.cut_events, "reason": self.reason if self.cut_operations else ""}


@dataclass(frozen=True)
class BoundedPlan:
    plan: FleetPlan  # what the run plays (the cut plan)
    cut: PlanCut
    end_s: float  # seconds from the run's start at which the run ends: last played action + DRAIN_S

    @property
    def digest(self) -> str:
        return plan_digest(self.plan)


def plan_for(scenario: Scenario) -> FleetPlan:
    """The scenario's whole plan (the only production call of simulator.plan.build_plan)."""
    return build_plan(scenario)


def bound_plan(plan: FleetPlan, duration_s: float, graceful_stop_s: float) -> BoundedPlan:
    """`plan` without the actions that would end after duration + graceful_stop (a reboot ends when its device
    is back), with the counts of what was removed and the run's end on the plan's clock."""
    limit_us = round((duration_s + graceful_stop_s) * 1e6)
    duration_us = round(duration_s * 1e6)
    kept: list[tuple[PlannedAction, ...]] = []
    cut_events = 0
    for index in range(len(plan.device_ids)):
        actions = plan.actions_for(index)
        keep = tuple(a for a in actions if a.offset_us + a.duration_us <= limit_us)
        cut_events += sum(1 for a in actions if a.kind is ActionKind.PUBLISH and a.interface == OTA_EVENT_INTERFACE
                          and a.offset_us + a.duration_us > limit_us)
        kept.append(keep)
    in_flight = sum(1 for op in plan.operations if op.end_us > duration_us)
    cut_ops = sum(1 for op in plan.operations if op.end_us > limit_us)
    bounded = replace(plan, _actions=tuple(kept))
    cut = PlanCut(duration_s=duration_s, graceful_stop_s=graceful_stop_s, in_flight_at_duration=in_flight,
                  cut_operations=cut_ops, cut_events=cut_events)
    return BoundedPlan(plan=bounded, cut=cut, end_s=max(duration_s, bounded.last_action_s) + DRAIN_S)


def plan_digest(plan: FleetPlan) -> str:
    """A short hash of everything the fleet will do (ids, online offsets, every action): equal digests on the
    master and on every worker mean they all play the same plan."""
    h = hashlib.sha256()
    h.update(repr((plan.seed, plan.device_ids, plan.online_us, plan.cut_us)).encode())
    for index in range(len(plan.device_ids)):
        h.update(repr(plan.actions_for(index)).encode())
    return h.hexdigest()[:16]
