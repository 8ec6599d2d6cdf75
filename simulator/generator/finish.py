"""The end of a run: arrivals in, books joined, summary and files out (no Locust here).

Called by `fleetsim run` (and replay) with the generator's merged recorder. Every planned event ends as one of:
delivered, lost (with its reason), or not attempted (device never online / run interrupted) -- counted, never
dropped silently (issue 6 item 2, issue 9).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from simulator.errors import FleetsimError
from simulator.faults.schedule import BACKEND_KINDS, build_schedule
from simulator.generator.arrival_pump import ArrivalPump
from simulator.generator.observer_loss import ObserverLoss
from simulator.generator.target import TargetInfo
from simulator.metrics.accounting import Accounting, accounting_of
from simulator.metrics.books import RunBooks, books_from_logs
from simulator.metrics.books_export import JoinedBooks
from simulator.metrics.fault_attribution import FaultTotals, FaultWindow, attribute_timed, window
from simulator.metrics.funnel import Funnel, OperationId
from simulator.metrics.health import ClockOffset, GeneratorHealth
from simulator.metrics.join_check import JoinCheck, JoinChecker
from simulator.metrics.json_tree import JsonValue, from_json, to_json
from simulator.metrics.recorder import MetricsRecorder
from simulator.metrics.run_summary import (
    FaultCaused,
    FaultRecord,
    JoinSummary,
    PlanNotes,
    RunNotes,
    RunSummary,
    ThresholdReport,
)
from simulator.observers.base import Observer
from simulator.observers.fence import RunFence
from simulator.outputs.bundle import write_results
from simulator.outputs.csv_logs import ARRIVALS_FILE, SENT_FILE
from simulator.outputs.summary import results_dir, summarize
from simulator.plan import FleetPlan
from simulator.records import ArrivalRecord
from simulator.scenario.model import Scenario

log = logging.getLogger("fleetsim.finish")

__all__ = ["FinishedRun", "collect_arrivals", "finish_run", "live_operation_starts", "operation_starts", "spool_dir"]

SETTLE_S = 10.0  # the longest we wait for the observer to catch up with what was acked (loopback: < 1 s)
GRACE_S = 5.0  # arrivals later than the run's end + this are "late"


@dataclass(frozen=True)
class FinishedRun:
    run_dir: Path
    summary: RunSummary
    files: dict[str, Path]
    partial: bool = False  # as asked, or made partial here: the observer failed at the end
    reason: str = ""  # the run's reason, with the observer's failure appended
    observer_lost: str = ""  # what the observer's failure at the end left out ("" = it answered)


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


def spool_dir(results_root: Path) -> Path:
    """Where a process streams its per-event logs while the run plays (moved into the run's folder at the end)."""
    return results_root / ".spool" / f"{os.getpid()}-{time.time_ns()}"


# How far past the latest first event of the wanted operations their planned starts are looked for (s): an
# operation's first event leaves at or after its planned start (the pacer never sends early); the margin is for
# the wall clock being stepped (NTP) during the run.
STARTS_SLACK_S = 60.0


def operation_starts(plan: FleetPlan | None, run_start_wall: float, wanted: Collection[OperationId] | None = None,
                     until_wall: float | None = None) -> dict[OperationId, float]:
    """(device, uuid) -> wall start of each planned operation, for books built at the end from a send log held
    in memory. Without `wanted`, every operation: a whole pass over the plan (tools, tests). With `wanted` (the
    operations the books hold: the only starts the funnel reads), theirs only, and the pass stops once it found
    them all or passed `until_wall` (the latest of their first events) + STARTS_SLACK_S: O(wanted) memory and
    the part of the plan that was played, not the whole plan (issue 14: an early-stopped long run). A live
    run's books use `live_operation_starts` (a worker's cursor keeps its own devices' recent operations)."""
    if plan is None:
        return {}
    ids = plan.device_ids
    if wanted is None:
        return {(ids[op.device], op.uuid): run_start_wall + op.start_us / 1e6 for op in plan.operations}
    want = set(wanted)
    found: dict[OperationId, float] = {}
    limit_us = None if until_wall is None else round((until_wall - run_start_wall + STARTS_SLACK_S) * 1e6)
    for step in plan.steps() if want else ():
        if step is None:
            continue
        if limit_us is not None and step.at_us > limit_us:
            break
        for op in step.operations:
            key = (ids[op.device], op.uuid)
            if key in want:
                found[key] = run_start_wall + op.start_us / 1e6
        if len(found) == len(want):
            break
    return found


def live_operation_starts(plan: FleetPlan, run_start_wall: float) -> Mapping[OperationId, float]:
    """The planned starts of this process's recent operations as its cursor generates them (bounded:
    simulator.plan_cursor.PlannedStarts), on the run's wall clock."""
    starts = plan.cursor.starts
    starts.run_start_wall = run_start_wall
    return starts


def _recovery_s(rec: Mapping[str, JsonValue]) -> float:
    """How long the fault's devices took to come back, as the fault measured it (0 when it did not)."""
    values: list[float] = []
    reconnect = rec.get("reconnect_s")
    if isinstance(reconnect, dict) and isinstance(reconnect.get("max"), int | float):
        values.append(float(reconnect["max"]))  # type: ignore[arg-type]
    for key in ("all_back_s", "reconnected_s"):
        value = rec.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            values.append(float(value))
    return max(values, default=0.0)


def _fault_windows(scenario: Scenario, plan: FleetPlan | None,
                   records: Sequence[Mapping[str, JsonValue]]) -> list[FaultWindow | None]:
    """One attribution window per fault record (the devices it hit come from the seeded schedule)."""
    devices: list[frozenset[str] | None] = [None] * len(records)
    if plan is not None and scenario.faults:
        actions = build_schedule(scenario, len(plan.device_ids)).actions
        for i, action in enumerate(actions[:len(records)]):
            if action.kind not in BACKEND_KINDS and action.devices:
                devices[i] = frozenset(plan.device_ids[d] for d in action.devices)
    out: list[FaultWindow | None] = []
    for rec, devs in zip(records, devices, strict=True):
        started, ended = rec.get("started"), rec.get("ended")
        out.append(window(float(started) if isinstance(started, int | float) else None,
                          float(ended) if isinstance(ended, int | float) else None, _recovery_s(rec), devs))
    return out


def _faults(raw: object, totals: FaultTotals) -> tuple[FaultRecord, ...]:
    records = from_json(RunNotes, {"faults": to_json(raw)}, "fault log").faults or ()
    out = []
    for rec, caused in zip(records, totals.per_fault, strict=False):
        win = caused.window
        out.append(dataclasses.replace(rec, caused=FaultCaused(
            errors=caused.errors, lost=caused.lost, lost_reasons=dict(caused.lost_reasons),
            window_s=(round(win.start, 3), round(win.end, 3)) if win is not None else None)))
    return tuple(out)


def _notes(scenario: Scenario, plan: FleetPlan | None, target: TargetInfo, recorder: MetricsRecorder,
           planned: int | None, reason: str, fleet_counters: Mapping[str, object] | None,
           extra: Mapping[str, object], totals: FaultTotals) -> RunNotes:
    offered = recorder.totals["offered"]
    other = {k: to_json(v) for k, v in extra.items() if k != "faults"}
    counters = dict(fleet_counters or {})
    fleet = {k: v for k, v in counters.items() if isinstance(v, int | float)}
    failed = counters.get("failed_devices")
    return RunNotes(
        target={k: to_json(v) for k, v in target.redacted().items()}, broker=target.broker_kind,
        broker_version=target.broker_version, broker_label=target.broker_label, broker_tls=target.broker_tls,
        broker_warning=target.broker_warning, reason=reason, fleet=fleet,
        failed_devices={str(k): str(v) for k, v in failed.items()} if isinstance(failed, Mapping) else {},
        not_attempted=(planned - offered) if planned is not None else None,
        not_attempted_reason=("planned events never attempted: device not online, or the run was stopped "
                              "before their time" if planned is not None and planned > offered else ""),
        plan=PlanNotes(operations=plan.totals.operations, dropped_operations=plan.dropped,
                       in_flight_at_cut=plan.in_flight) if plan is not None else None,
        arrival_phase=scenario.arrival.phase,
        faults=_faults(extra["faults"], totals) if extra.get("faults") is not None else None,
        other=other)


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
    fleet_counters: Mapping[str, object] | None = None,
    sdk_over_limit: bool = False,
    extra: Mapping[str, object] | None = None,
    thresholds_report: Callable[[RunSummary], ThresholdReport] | None = None,
    cut_operations: Collection[OperationId] = (),
    pump: ArrivalPump | None = None,
    joined: JoinedBooks | None = None,
    plan_uncounted: str = "",
) -> FinishedRun:
    """Join the books, judge the run, write its files; the RunSummary is `FinishedRun.summary`.

    With `recorder.books` the join ran while the run played (`pump` fed it); without (a recorder that kept
    its send log in memory) the same books are built from the log here; with `joined` (workers that joined
    their own partitions) their merged books are used and their log files merged into the run's folder.

    An observer that fails at the end (the embedded backend gone) never loses the run: the books keep what was
    read, the run is partial and `FinishedRun.observer_lost` (also in the reason and summary.json extra
    `observer_end`) says what is missing. `plan_uncounted` (a second Ctrl-C stopped the count of the plan):
    not_attempted and the plan's totals are null, with that note."""
    if joined is not None:
        return _finish_joined(joined, scenario=scenario, plan=plan, target=target, recorder=recorder,
                              observer=observer, started_at=started_at, ended_at=ended_at, results_root=results_root,
                              health=health, partial=partial, reason=reason, fleet_counters=fleet_counters,
                              sdk_over_limit=sdk_over_limit, extra=extra, thresholds_report=thresholds_report,
                              plan_uncounted=plan_uncounted)
    expected = recorder.totals["acked"]
    books = recorder.books
    if books is None:
        books = books_from_logs(spool_dir(results_root), recorder.start, recorder.send_log,
                                join=observer is not None)
        arm_join_check(books, observer)  # before any arrival is joined
    lost: ObserverLoss | None = None
    if observer is not None:
        if pump is None:
            pump = ArrivalPump(observer, books)
        try:
            pump.drain(expected, SETTLE_S)
        except (FleetsimError, OSError, ValueError) as exc:
            lost = ObserverLoss(observer.name, str(exc), pump.read_at)
            log.warning("%s", lost.note())
    lost_note = lost.note() if lost is not None else ""
    if lost is not None:
        partial, reason = True, "; ".join(r for r in (reason, lost_note) if r)
        extra = {**(extra or {}), "observer_end": lost.to_jsonable()}
    books.close(ended_at, GRACE_S)
    accounting: Accounting | None = None
    if observer is not None and books.join is not None:
        accounting = accounting_of(books.join, ended_at, GRACE_S)
    if books.funnel.starts is None:  # a live run set them when its clock started (LiveBooks.run_started)
        # Books built here from a send log held whole (a live run never gets here): the starts of the
        # operations the books hold, from a pass over the plan that ends with the last of them.
        ops = books.funnel.ops
        last = max((op.start for op in ops.values()), default=None)
        starts = operation_starts(plan, started_at, ops.keys(), last) if scenario.mode == "self" else {}
        books.funnel.starts = starts or None
    funnel = books.funnel.build(frozenset(cut_operations))
    join = books.join.check.result() if observer is not None and books.join is not None else None
    finished = _judge_and_write(
        accounting, funnel, books.errors, fence=observer.fence if observer is not None else None, join=join,
        scenario=scenario, plan=plan, target=target, recorder=recorder,
        started_at=started_at, ended_at=ended_at, results_root=results_root, health=health, partial=partial,
        reason=reason, fleet_counters=fleet_counters, sdk_over_limit=sdk_over_limit, extra=extra,
        thresholds_report=thresholds_report, write_logs=lambda run_dir: _move_logs(books, run_dir),
        plan_uncounted=plan_uncounted)
    shutil.rmtree(books.spool_dir, ignore_errors=True)
    with contextlib.suppress(OSError):  # another run of this results root may still be spooling
        books.spool_dir.parent.rmdir()
    return dataclasses.replace(finished, observer_lost=lost_note)


def _move_logs(books: RunBooks, run_dir: Path) -> dict[str, Path]:
    return {"sent": Path(shutil.move(books.sent_path, run_dir / SENT_FILE)),
            "arrivals": Path(shutil.move(books.arrivals_path, run_dir / ARRIVALS_FILE))}


def _merge_logs(logs: Sequence[tuple[Path, Path]], run_dir: Path) -> dict[str, Path]:
    """Each worker's per-event logs, concatenated by file into the run's folder (header once). A worker's file
    that this process cannot read (another host, no shared disk) is left where it is and logged."""
    out: dict[str, Path] = {}
    for column, name, label in ((0, SENT_FILE, "sent"), (1, ARRIVALS_FILE, "arrivals")):
        target = run_dir / name
        with target.open("w", encoding="utf-8", newline="") as dst:
            header_written = False
            for pair in logs:
                src = pair[column]
                try:
                    with src.open(encoding="utf-8", newline="") as f:
                        header = f.readline()
                        if not header_written:
                            dst.write(header)
                            header_written = True
                        shutil.copyfileobj(f, dst)
                except OSError as exc:
                    log.warning("worker log %s not merged into %s: %s", src, target, exc)
                    continue
                with contextlib.suppress(OSError):
                    src.unlink()
                    src.parent.rmdir()  # the worker's spool dir, once both of its files are merged
                    src.parent.parent.rmdir()  # the results root's .spool, once no worker spools there
        out[label] = target
    return out


def _finish_joined(joined: JoinedBooks, *, scenario: Scenario, plan: FleetPlan | None, target: TargetInfo,
                   recorder: MetricsRecorder, observer: Observer | None, started_at: float, ended_at: float,
                   results_root: Path, health: GeneratorHealth | None, partial: bool, reason: str,
                   fleet_counters: Mapping[str, object] | None, sdk_over_limit: bool,
                   extra: Mapping[str, object] | None,
                   thresholds_report: Callable[[RunSummary], ThresholdReport] | None,
                   plan_uncounted: str) -> FinishedRun:
    accounting = joined.accounting if observer is not None else None
    if joined.evicted_then_arrived:  # each worker said so on its console; the master's says it once for all
        log.warning("observer behind: %d events arrived after the workers' joins stopped waiting for them "
                    "(counted as delivered or late all the same)", joined.evicted_then_arrived)
    # Each worker checked its own pairs against the master's fence offset (RunSettings.arrival_*).
    return _judge_and_write(
        accounting, joined.funnel, joined.errors, fence=observer.fence if observer is not None else None,
        join=joined.join if observer is not None else None, scenario=scenario, plan=plan, target=target,
        recorder=recorder, started_at=started_at, ended_at=ended_at, results_root=results_root, health=health,
        partial=partial, reason=reason, fleet_counters=fleet_counters, sdk_over_limit=sdk_over_limit, extra=extra,
        thresholds_report=thresholds_report, write_logs=lambda run_dir: _merge_logs(joined.logs, run_dir),
        plan_uncounted=plan_uncounted)


def _judge_and_write(accounting: Accounting | None, funnel: Funnel, errors: Sequence[tuple[str, float]], *,
                     fence: RunFence | None, join: JoinCheck | None,
                     scenario: Scenario, plan: FleetPlan | None, target: TargetInfo, recorder: MetricsRecorder,
                     started_at: float, ended_at: float, results_root: Path, health: GeneratorHealth | None,
                     partial: bool, reason: str, fleet_counters: Mapping[str, object] | None,
                     sdk_over_limit: bool, extra: Mapping[str, object] | None,
                     thresholds_report: Callable[[RunSummary], ThresholdReport] | None,
                     write_logs: Callable[[Path], dict[str, Path]], plan_uncounted: str = "") -> FinishedRun:
    offset = (ClockOffset(estimate_s=accounting.offset_min, samples=accounting.offset_samples)
              if accounting is not None and accounting.offset_min is not None else None)
    # Not counted (second Ctrl-C): no planned total, so no not_attempted; the plan's notes are left out too.
    planned = plan.planned_events if plan is not None and scenario.mode == "self" and not plan_uncounted else None
    notes_in = dict(extra or {})
    raw_faults = notes_in.get("faults")
    fault_records = [r for r in raw_faults if isinstance(r, Mapping)] if isinstance(raw_faults, list) else []
    lost = ([(key, reason, when) for (key, reason), when in zip(accounting.lost_events, accounting.lost_when,
                                                               strict=True)] if accounting is not None else [])
    totals = attribute_timed(_fault_windows(scenario, plan, fault_records), errors, lost)
    notes = _notes(scenario, plan if not plan_uncounted else None, target, recorder, planned, reason,
                   fleet_counters, notes_in, totals)
    if plan_uncounted and scenario.mode == "self":
        notes = dataclasses.replace(notes, not_attempted_reason=plan_uncounted)
    summary = summarize(
        scenario=scenario.name, seed=scenario.seed, started_at=started_at, duration_s=max(0.0, ended_at - started_at),
        devices=scenario.fleet.devices, transport=scenario.transport, target=target.kind, recorder=recorder,
        accounting=accounting, funnel=funnel, health=health, planned=planned, partial=partial,
        clock_offset=offset, sdk_over_limit=sdk_over_limit, notes=notes, attributed=totals,
        join=_join_summary(fence, join), invalid_join=join.reason() if join is not None else "")
    if thresholds_report is not None:
        summary = dataclasses.replace(summary, thresholds=thresholds_report(summary))
    run_dir = results_dir(results_root, scenario.name, started_at)
    run_dir.mkdir(parents=True, exist_ok=True)
    files = write_results(run_dir, summary, recorder, accounting, logs=write_logs)
    if summary.thresholds is not None:
        from simulator.outputs.junit import write_junit

        files["junit"] = write_junit(run_dir, scenario.name, summary.thresholds)
    return FinishedRun(run_dir=run_dir, summary=summary, files=files, partial=partial, reason=reason)


def _join_summary(fence: RunFence | None, join: JoinCheck | None) -> JoinSummary | None:
    """summary.json `join`: the run's fence (simulator.observers.fence) and the join's sanity check."""
    if join is None:
        return None
    return JoinSummary(
        fence=fence.kind if fence is not None else "", fence_at=fence.at if fence is not None else None,
        fence_cursor=fence.cursor if fence is not None else 0,
        ignored_before_run=fence.ignored_before if fence is not None else 0,
        offset_ms=round(join.offset_s * 1000, 3), uncertainty_ms=round(fence.uncertainty_s * 1000, 3) if fence else 0.0,
        pairs=join.pairs, impossible=join.impossible,
        worst_ms=round(join.worst_s * 1000, 3) if join.worst_s is not None else None,
        allowance_ms=round(join.allowance_s * 1000, 3), examples=tuple(join.examples))


def arm_join_check(books: RunBooks, observer: Observer | None) -> None:
    """Give the online join the clock offset the run's fence measured (invalid_join: simulator.metrics.join_check)."""
    fence = observer.fence if observer is not None else None
    if books.join is not None and fence is not None:
        books.join.check = JoinChecker(fence.offset_s, fence.uncertainty_s)
