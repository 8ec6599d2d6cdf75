"""The end of a run: arrivals in, books joined, summary and files out (no Locust here).

Called by `fleetsim run` (and replay) with the generator's merged recorder. Every planned event ends as one of:
delivered, lost (with its reason), or not attempted (device never online / run interrupted) -- counted, never
dropped silently (issue 6 item 2, issue 9).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.generator.target import TargetInfo
from simulator.metrics.accounting import Accounting, account
from simulator.metrics.funnel import OperationId, funnel_from_sends
from simulator.metrics.health import GeneratorHealth, clock_offset_estimate
from simulator.metrics.recorder import MetricsRecorder
from simulator.observers.base import Observer
from simulator.outputs.bundle import write_results
from simulator.outputs.summary import build_summary, results_dir
from simulator.plan import FleetPlan
from simulator.records import ArrivalRecord
from simulator.scenario.model import Scenario

__all__ = ["FinishedRun", "collect_arrivals", "finish_run"]

SETTLE_S = 10.0  # the longest we wait for the observer to catch up with what was acked (loopback: < 1 s)
GRACE_S = 5.0  # arrivals later than the run's end + this are "late"


@dataclass(frozen=True)
class FinishedRun:
    run_dir: Path
    summary: dict[str, Any]
    files: dict[str, Path]


def collect_arrivals(observer: Observer | None, expected: int, settle_s: float = SETTLE_S) -> list[ArrivalRecord]:
    """Wait until the observer has seen `expected` events or stopped moving for a second, then read them."""
    if observer is None:
        return []
    deadline = time.monotonic() + settle_s
    last, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = observer.arrival_count()
        if count >= expected:
            break
        if count != last:
            last, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > 1.0:
            break
        time.sleep(0.1)  # polling another process's counter; nothing to wait on here
    return observer.arrivals()


def _operation_starts(plan: FleetPlan | None, run_start_wall: float) -> dict[OperationId, float]:
    if plan is None:
        return {}
    return {(plan.device_ids[op.device], op.uuid): run_start_wall + op.start_us / 1e6 for op in plan.operations}


def finish_run(
    *,
    scenario: Scenario,
    plan: FleetPlan | None,
    target: TargetInfo,
    recorder: MetricsRecorder,
    observer: Observer | None,
    started_at: float,
    ended_at: float,
    results_root: Path,
    health: GeneratorHealth | None = None,
    partial: bool = False,
    reason: str = "",
    fleet_counters: Mapping[str, Any] | None = None,
    sdk_over_limit: bool = False,
    extra: Mapping[str, Any] | None = None,
    thresholds_report: Any = None,
) -> FinishedRun:
    expected = recorder.totals["acked"]
    arrivals = collect_arrivals(observer, expected)
    accounting: Accounting | None = None
    if observer is not None:
        accounting = account(recorder.send_log, arrivals, end=ended_at, grace=GRACE_S)
    starts = _operation_starts(plan, started_at) if scenario.mode == "self" else {}
    funnel = funnel_from_sends(recorder.send_log, starts or None)
    offset = clock_offset_estimate((r.sent, a.arrival) for r, a in _pairs(recorder, arrivals))
    planned = plan.planned_events if plan is not None and scenario.mode == "self" else None
    notes: dict[str, Any] = {
        "target": target.redacted(), "broker": target.broker_kind, "reason": reason,
        "broker_version": target.broker_version, "broker_label": target.broker_label,
        "broker_warning": target.broker_warning,
        "fleet": dict(fleet_counters or {}),
        "not_attempted": (planned - recorder.totals["offered"]) if planned is not None else None,
        "not_attempted_reason": ("planned events never attempted: device not online, or the run was stopped "
                                 "before their time" if planned is not None
                                 and planned > recorder.totals["offered"] else ""),
        "plan": {"operations": len(plan.operations), "dropped_operations": plan.dropped,
                 "in_flight_at_cut": plan.in_flight} if plan is not None else None,
        "arrival_phase": scenario.arrival.phase,
        **dict(extra or {}),
    }
    summary = build_summary(
        scenario=scenario.name, seed=scenario.seed, started_at=started_at, duration_s=max(0.0, ended_at - started_at),
        devices=scenario.fleet.devices, transport=scenario.transport, target=target.kind, recorder=recorder,
        accounting=accounting, funnel=funnel, health=health, planned=planned, partial=partial,
        clock_offset=offset, sdk_over_limit=sdk_over_limit, extra=notes)
    if thresholds_report is not None:
        summary["thresholds"] = thresholds_report(summary)
    run_dir = results_dir(results_root, scenario.name, started_at)
    run_dir.mkdir(parents=True, exist_ok=True)
    files = write_results(run_dir, summary, recorder, accounting, arrivals)
    if "thresholds" in summary:
        from simulator.outputs.junit import write_junit

        files["junit"] = write_junit(run_dir, scenario.name, summary["thresholds"])
    return FinishedRun(run_dir=run_dir, summary=summary, files=files)


def _pairs(recorder: MetricsRecorder, arrivals: Sequence[ArrivalRecord]) -> list[tuple[Any, ArrivalRecord]]:
    by_key = {r.key: r for r in recorder.send_log if r.sent is not None}
    return [(by_key[a.key], a) for a in arrivals if a.key in by_key]


