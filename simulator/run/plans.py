"""The one production place a plan is built, and the run's bounds on it (duration + graceful_stop).

A scenario and its seed are the plan's recipe: every process (master, workers, `fleetsim plan`, replay
recording) calls `plan_for`, so the plan is the same byte for byte wherever it is built (`plan_digest`
proves it across processes). `bound_plan` cuts the plan at the run's end as it is generated, k6-style:
operations still running at `duration` may go on for `graceful_stop` seconds; those that would run longer are
cut (their actions after `duration` removed, counted with a reason), so the run never plays past
duration + graceful_stop + DRAIN_S (the end it announces until the exact end is known) and nothing is lost
silently.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.plan import FleetPlan, build_plan
from simulator.plan_steps import PlanBounds, PlanTotals, actions_digest_bytes, digest_of
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
    """What a run plays: the plan with the run's bounds. The plan is lazy (simulator.plan_cursor): its cut, end
    and digest are exact once this process's cursor reached the plan's end (at the latest when asked for
    `cut` or `digest`); before that `end_s` is the bound `end_bound_s`."""

    plan: FleetPlan  # what the run plays (the cut plan; its cursor is this process's)
    duration_s: float
    graceful_stop_s: float

    @property
    def end_bound_s(self) -> float:
        """The latest the run can end: a cut plan plays nothing after duration + graceful_stop."""
        return self.duration_s + self.graceful_stop_s + DRAIN_S

    @property
    def end_s(self) -> float:
        """Seconds from the run's start at which the run ends: last played action + DRAIN_S once the plan is
        generated to its end, `end_bound_s` until then."""
        totals = self.plan.cursor.known_totals()
        if totals is None:
            return self.end_bound_s
        return max(self.duration_s, totals.last_offset_us / 1e6) + DRAIN_S

    def known_cut(self) -> PlanCut | None:
        """The cut once the plan is generated to its end (None before)."""
        totals = self.plan.cursor.known_totals()
        return None if totals is None else self._cut(totals)

    @property
    def cut(self) -> PlanCut:
        """What the bounds removed (generates the rest of the plan if the run has not reached its end)."""
        return self._cut(self.plan.totals)

    def cut_so_far(self) -> PlanCut:
        """What the bounds removed from the part of the plan this process generated (`cut` once it reached the
        end), without generating more: all a process that stopped early needs to tell its cut operations from
        stuck ones, since every operation it played was generated (simulator.plan_cursor.PlanCursor.progress)."""
        return self._cut(self.plan.cursor.progress())

    @property
    def digest(self) -> str:
        return self.plan.totals.digest

    def _cut(self, totals: PlanTotals) -> PlanCut:
        return PlanCut(duration_s=self.duration_s, graceful_stop_s=self.graceful_stop_s,
                       in_flight_at_duration=totals.in_flight, cut_operations=totals.cut_operations,
                       cut_events=totals.cut_events, operation_ids=totals.cut_ids)


def plan_for(scenario: Scenario) -> FleetPlan:
    """The scenario's plan (the only production call of simulator.plan.build_plan)."""
    return build_plan(scenario)


def bound_plan(plan: FleetPlan, duration_s: float, graceful_stop_s: float) -> BoundedPlan:
    """`plan` as a run bounded by `duration_s` + `graceful_stop_s` plays it.

    An operation still running at the duration that ends within the graceful stop is played whole (drained).
    One that would still run at duration + graceful stop is cut at the duration: its later actions are
    removed (playing them would only delay the end without finishing it) and counted. A reboot counts as
    running until its device is back. The cut is applied as each operation is generated: its end is known
    then.
    """
    bounds = PlanBounds(duration_us=round(duration_s * 1e6), limit_us=round((duration_s + graceful_stop_s) * 1e6))
    return BoundedPlan(plan=plan.bounded(bounds), duration_s=duration_s, graceful_stop_s=graceful_stop_s)


def plan_digest(plan: FleetPlan) -> str:
    """A short hash of everything the fleet will do (ids, online offsets, every action in arrival order): equal
    digests on the master and on every worker mean they all play the same plan. A fresh whole pass."""
    h = digest_of(plan.digest_head())
    for step in plan.steps():
        if step is not None:
            h.update(actions_digest_bytes(step.actions))
    return h.hexdigest()[:16]
