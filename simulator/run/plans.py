"""The one production place a plan is built, and the run's bounds on it (duration + graceful_stop).

A scenario and its seed are the plan's recipe: every process (master, workers, `fleetsim plan`, replay
recording) calls `plan_for`, so the plan is the same byte for byte wherever it is built (`plan_digest`
proves it across processes). `bound_plan` cuts the plan at the run's end *before* the run starts, k6-style:
operations still running at `duration` may go on for `graceful_stop` seconds; those that would run longer are
cut (their actions after `duration` removed, counted with a reason), so the announced end is the true end and
nothing is lost silently.
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
CUT_REASON = "would still be running at duration + graceful_stop: not played after duration"


@dataclass(frozen=True)
class PlanCut:
    """What the run's bounds removed from the plan (all counts; nothing here is ever sent)."""

    duration_s: float
    graceful_stop_s: float
    in_flight_at_duration: int  # operations still running at `duration`
    cut_operations: int  # of those, still running at duration + graceful_stop: not played after duration
    cut_events: int  # OTAEvent publishes removed with those tails
    operation_ids: tuple[tuple[str, str], ...] = ()  # (device id, requestUUID) of each cut operation
    reason: str = CUT_REASON

    def to_jsonable(self, max_listed: int = 100) -> dict[str, object]:
        """summary.json extra.cut. A cut operation has sent events but no final status: it is not `stuck`
        (the run's bounds stopped it, not the backend); `operation_ids` lets the funnel tell them apart."""
        return {"duration_s": self.duration_s, "graceful_stop_s": self.graceful_stop_s,
                "in_flight_at_duration": self.in_flight_at_duration, "operations": self.cut_operations,
                "events": self.cut_events, "reason": self.reason if self.cut_operations else "",
                "operation_ids": [list(op) for op in self.operation_ids[:max_listed]]}


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
    """`plan` as a run bounded by `duration_s` + `graceful_stop_s` plays it, the counts of what it cuts, and
    the run's end on the plan's clock.

    An operation still running at the duration that ends within the graceful stop is played whole (drained).
    One that would still run at duration + graceful stop is cut at the duration: its later actions are
    removed (playing them would only delay the end without finishing it) and counted. A reboot counts as
    running until its device is back.
    """
    duration_us = round(duration_s * 1e6)
    limit_us = round((duration_s + graceful_stop_s) * 1e6)
    cut_devices = {op.device for op in plan.operations if op.end_us > limit_us}
    kept: list[tuple[PlannedAction, ...]] = []
    cut_events = 0
    for index in range(len(plan.device_ids)):
        until_us = duration_us if index in cut_devices else limit_us
        actions = plan.actions_for(index)
        keep = tuple(a for a in actions if a.offset_us + a.duration_us <= until_us)
        cut_events += sum(1 for a in actions if a.kind is ActionKind.PUBLISH and a.interface == OTA_EVENT_INTERFACE
                          and a.offset_us + a.duration_us > until_us)
        kept.append(keep)
    in_flight = sum(1 for op in plan.operations if op.end_us > duration_us)
    cut_ops = tuple((plan.device_ids[op.device], op.uuid) for op in plan.operations if op.end_us > limit_us)
    bounded = replace(plan, _actions=tuple(kept))
    cut = PlanCut(duration_s=duration_s, graceful_stop_s=graceful_stop_s, in_flight_at_duration=in_flight,
                  cut_operations=len(cut_ops), cut_events=cut_events, operation_ids=cut_ops)
    return BoundedPlan(plan=bounded, cut=cut, end_s=max(duration_s, bounded.last_action_s) + DRAIN_S)


def plan_digest(plan: FleetPlan) -> str:
    """A short hash of everything the fleet will do (ids, online offsets, every action): equal digests on the
    master and on every worker mean they all play the same plan."""
    h = hashlib.sha256()
    h.update(repr((plan.seed, plan.device_ids, plan.online_us, plan.cut_us)).encode())
    for index in range(len(plan.device_ids)):
        h.update(repr(plan.actions_for(index)).encode())
    return h.hexdigest()[:16]
