"""`execute(spec, driver) -> RunResult`: target up, the plan played by a driver, books closed, results out.

The one end-of-run tail: `fleetsim run`, `fleetsim replay` and the plain gevent driver go through `execute`;
plain `locust -f` (where Locust owns the process) calls `close_books` directly. A driver plays the bounded
plan on this process (plain gevent) or through Locust (local, or a master with workers) and returns a
`DriveOutcome`; nothing here imports Locust.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TextIO

from simulator.faults.schedule import build_schedule
from simulator.generator.driver_result import DriverResult
from simulator.generator.finish import finish_run
from simulator.generator.limits import ensure_open_files
from simulator.generator.target import TargetInfo, open_target
from simulator.generator.thresholds_bridge import thresholds_report
from simulator.metrics.books_export import JoinedBooks
from simulator.metrics.campaign import CampaignReport, campaign_report
from simulator.metrics.health import GeneratorHealth
from simulator.metrics.operation_spool import OperationSpool
from simulator.metrics.recorder import MetricsRecorder
from simulator.metrics.run_summary import RunSummary
from simulator.observers.base import Observer
from simulator.outputs.exit_status import ExitStatus, exit_status
from simulator.run.live_books import LiveBooks
from simulator.run.plans import BoundedPlan
from simulator.run.spec import RunSpec
from simulator.scenario.model import Scenario

__all__ = ["DriveOutcome", "Driver", "RunResult", "WorkerPlan", "close_books", "execute", "observer_for_target",
           "trigger_t_margin_s"]

log = logging.getLogger("fleetsim.run")

SDK_COMFORT_DEVICES = 300  # simulator.transports.sdk: beyond this a thread per device saturates (README)


@dataclass(frozen=True)
class WorkerPlan:
    """What one worker process reported it played: the digest of its plan and its fleet size."""

    index: int
    plan_digest: str  # over the plan's first `plan_steps` steps (PlanCursor.digest_mark)
    devices: int
    plan_steps: int = 0
    plan_whole: bool = True  # the worker generated its plan to the end (False: it stopped early)
    final_bytes: int = 0  # size of its final message to the master (msgpack bytes)
    # The same, per top-level part of the message (recorder seconds, books, health, operations, ...): where
    # a large final's bytes are (issue 14 wants <= 1 MB per worker whatever the run's length).
    final_parts: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class DriveOutcome:
    """What a driver hands back: the merged books of every generator process and how the run ended."""

    recorder: MetricsRecorder
    started_at: float  # wall time of the run's start (plan offset 0)
    ended_at: float
    partial: bool = False
    reason: str = ""  # why it was interrupted ("" = not interrupted)
    end_reason: str = ""  # why it ended when it did (e.g. "campaign finished: 40/40 operations final")
    health: GeneratorHealth | None = None
    fleet_counters: Mapping[str, int] = field(default_factory=dict)
    campaign: Mapping[str, Any] | None = None  # the campaign driver's report (mode: campaign)
    campaign_result: DriverResult | None = None  # the backend's own view at the end (campaign metrics, convergence)
    # responder/campaign: every device's answered requests, folded by (device, uuid), on disk and tallied
    # (issue 14); close_books reads it for the campaign metrics, then discards it. None: no requests answered.
    operations: OperationSpool | None = None
    cut_open: int = 0  # operations still open when the run ended after its graceful stop (campaign mode)
    faults: Sequence[Mapping[str, Any]] | None = None  # the scenario's faults as run (faults.run_faults)
    workers: tuple[WorkerPlan, ...] = ()
    joined: JoinedBooks | None = None  # workers that joined their own partitions: their books, merged
    # The master forwarded its observer's arrivals to its workers (RunSettings.forward_arrivals) and released
    # them, but not every worker sent its books: nobody can join those arrivals now (delivered/lost unknown).
    arrivals_forwarded_unjoined: bool = False
    # Why the rest of the plan was not counted after an early stop ("" = counted, or played to its end): a
    # second Ctrl-C stopped the count. not_attempted and cut are then written as null with this note.
    plan_uncounted: str = ""
    interrupted: bool = False  # Ctrl-C / SIGTERM ended the play (partial for another reason otherwise)
    observer_lost: str = ""  # the observer failed at a worker's end or the master's forwarding (ObserverLoss)


class Driver(Protocol):
    """Plays a bounded plan against `spec.target` (open) and returns the merged books."""

    def drive(self, spec: RunSpec, bounded: BoundedPlan) -> DriveOutcome: ...


@dataclass(frozen=True)
class RunResult:
    status: ExitStatus  # the exit code and every reason it is not 0 (simulator.outputs.exit_status)
    run_dir: Path
    summary: RunSummary
    partial: bool
    reason: str
    campaign: CampaignReport | None = None  # responder/campaign runs: the campaign metrics and convergence

    @property
    def exit_code(self) -> int:
        return self.status.code


# How far before the run's mark a device's `t` may lie and still be the run's (trigger observers' fence): host
# clocks that disagree by a few seconds; negative clock_skew faults add their offset (trigger_t_margin_s).
T_MARGIN_S = 5.0


def trigger_t_margin_s(scenario: Scenario) -> float:
    """T_MARGIN_S plus the largest negative clock_skew a scenario injects (its devices then write a `t` that
    far in the past)."""
    skews = [-a.param("offset") for a in build_schedule(scenario).actions if a.kind == "clock_skew"]
    return T_MARGIN_S + max([0.0, *skews])


def observer_for_target(target: TargetInfo, scenario: Scenario | None = None) -> Observer | None:
    """The embedded collector, or the target file's configured observer (None: no e2e, no loss accounting).
    `start()` it before the run's first OTAEvent: that takes the run's fence (simulator.observers.fence)."""
    if target.kind == "embedded" and target.control_url:
        from simulator.observers.embedded import CollectorClient

        return CollectorClient(target.control_url, label=scenario.name if scenario is not None else "")
    from simulator.generator.target_file import observer_for

    return observer_for(target, trigger_t_margin_s(scenario) if scenario is not None else T_MARGIN_S)


def execute(spec: RunSpec, driver: Driver, out: TextIO) -> RunResult:
    """Open the target, play the spec's bounded plan with `driver`, write results, print the summary."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    scenario, settings = spec.scenario, spec.settings
    ensure_open_files(-(-scenario.fleet.devices // settings.processes))
    with open_target(scenario.target, scenario.realm, settings.state_dir, broker=settings.broker,
                     broker_tls=settings.broker_tls) as target:
        spec = spec.with_target(target)
        bounded = spec.bounded_plan()
        observer = observer_for_target(target, scenario)
        if observer is not None:
            observer.start()  # the run's fence: arrivals before this never join this run's sends
            fence = observer.fence
            if fence is not None:  # workers that pull arrivals read from the master's mark
                spec = replace(spec, settings=replace(
                    spec.settings, arrival_cursor=fence.cursor, arrival_offset_s=fence.offset_s,
                    arrival_uncertainty_s=fence.uncertainty_s, forward_arrivals=target.kind != "embedded"))
        live = LiveBooks(observer, settings.results_root)
        attach = getattr(driver, "attach_books", None)  # a driver that streams its books and joins live
        if callable(attach):
            attach(live)
        try:
            outcome = driver.drive(spec, bounded)
            result = close_books(spec, bounded, outcome, observer, live)
        finally:
            if observer is not None:
                observer.stop()
    from simulator.outputs.terminal import format_summary

    # Why the run ended comes first; the last lines are the thresholds, the verdict and the exit code.
    if result.campaign is not None:
        from simulator.outputs.campaign_lines import campaign_lines

        for line in campaign_lines(result.campaign):
            print(line, file=out)
    if outcome.end_reason:
        print(f"{settings.engine}: {outcome.end_reason}", file=out)
    if result.partial:
        print(f"{settings.engine}: {result.reason or 'stopped early'}; partial results written", file=out)
    print(format_summary(result.summary, result.status, run_dir=result.run_dir), end="", file=out)
    return result


def _campaign_summary(report: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if report is None:
        return None
    return {k: v for k, v in report.items() if k != "operations"}  # per-operation rows stay out of the summary


def _campaign_metrics(outcome: DriveOutcome) -> CampaignReport:
    """Per-operation request->Acknowledged/final, slots, retries, timeouts, and the backend's recorded state
    against the devices' own (convergence)."""
    result = outcome.campaign_result
    spool = outcome.operations.close() if outcome.operations is not None else None
    try:
        return campaign_report(
            spool if spool is not None else (), end=outcome.ended_at, driver=result.driver if result else "none",
            max_in_progress=result.max_in_progress if result else None,
            backend=result.operations if result else None, backend_status=result.status if result else None,
            tally=spool.tally if spool is not None else None)
    finally:
        if spool is not None:
            spool.discard()


def close_books(spec: RunSpec, bounded: BoundedPlan, outcome: DriveOutcome,
                observer: Observer | None, live: LiveBooks | None = None) -> RunResult:
    """Join the books and write results: the end-of-run tail every driver shares.

    summary.json `extra` carries: `cut` (operations/events the run's bounds left unplayed, with the reason),
    `end_reason`, `plan_digest` and `workers` (each worker's digest and fleet size), `engine`.
    """
    scenario, settings = spec.scenario, spec.settings
    assert spec.target is not None, "close_books runs with the target open"
    bounded.plan.cursor.stop_keeping()  # the play is over: the rest of the plan is counted, never buffered
    uncounted = outcome.plan_uncounted if not bounded.plan.cursor.done else ""
    # Not counted: what the part generated says, the totals null (never a count made up from part of the plan).
    plan_cut = bounded.cut_so_far() if uncounted else bounded.cut
    cut: dict[str, Any] = dict(plan_cut.to_jsonable())
    if uncounted:
        cut.update(in_flight_at_duration=None, operations=None, events=None, reason=uncounted, counted=False)
    if scenario.mode == "campaign":
        cut.update(operations=outcome.cut_open, events=0, in_flight_at_duration=outcome.cut_open, operation_ids=[],
                   reason="campaign operations still open at duration + graceful_stop" if outcome.cut_open else "")
    steps, mark = bounded.plan.cursor.digest_mark()
    extra: dict[str, Any] = {
        "engine": settings.engine, "processes": settings.processes, "cut": cut, "end_reason": outcome.end_reason,
        # Uncounted: the digest of the plan's first `plan_digest_steps` steps only (PlanCursor.digest_mark).
        "plan_digest": mark if uncounted else bounded.digest,
        "workers": [{"index": w.index, "plan_digest": w.plan_digest, "plan_steps": w.plan_steps,
                     "plan_whole": w.plan_whole, "devices": w.devices,
                     "final_bytes": w.final_bytes, "final_parts": dict(w.final_parts)} for w in outcome.workers],
    }
    if uncounted:
        extra["plan_digest_steps"] = steps
    if scenario.mode == "campaign":
        extra["campaign"] = _campaign_summary(outcome.campaign)
    report = _campaign_metrics(outcome) if scenario.answers_requests else None
    if report is not None:
        extra["campaign_metrics"] = report.to_json()
    if outcome.faults is not None:
        extra["faults"] = list(outcome.faults)
    if spec.replay is not None:
        extra["replay"] = spec.replay.to_jsonable()
    if outcome.arrivals_forwarded_unjoined:
        observer = None
    finished = finish_run(
        scenario=scenario, plan=bounded.plan, target=spec.target, recorder=outcome.recorder, observer=observer,
        started_at=outcome.started_at, ended_at=outcome.ended_at, results_root=settings.results_root,
        health=outcome.health, partial=outcome.partial, reason=outcome.reason,
        fleet_counters=dict(outcome.fleet_counters),
        sdk_over_limit=(scenario.transport == "sdk"
                        and scenario.fleet.devices > SDK_COMFORT_DEVICES * settings.processes),
        extra=extra, thresholds_report=thresholds_report(scenario), cut_operations=plan_cut.operation_ids,
        pump=live.pump if live is not None and outcome.recorder.books is not None else None,
        joined=outcome.joined, plan_uncounted=uncounted)
    notes = tuple(n for n in (outcome.observer_lost, finished.observer_lost, uncounted) if n)
    status = exit_status(finished.summary, partial=finished.partial, allow_incomplete=settings.allow_incomplete,
                         interrupted=outcome.interrupted, notes=notes)
    return RunResult(status=status, run_dir=finished.run_dir, summary=finished.summary, partial=finished.partial,
                     reason=finished.reason, campaign=report)
