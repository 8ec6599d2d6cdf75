"""One `fleetsim run` session: target up, Locust run, books closed, results written, target down."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, TextIO

from simulator.clock import MonotonicClock
from simulator.generator.finish import finish_run
from simulator.generator.limits import ensure_open_files
from simulator.generator.target import open_target
from simulator.generator.thresholds_bridge import thresholds_report
from simulator.locust_adapter.context import FleetContext
from simulator.locust_adapter.runner import LocustRun, RunOutcome
from simulator.metrics.campaign import CampaignReport, campaign_report
from simulator.metrics.health import GeneratorHealth
from simulator.metrics.recorder import MetricsRecorder
from simulator.observers.base import Observer
from simulator.outputs.campaign_lines import campaign_lines
from simulator.outputs.terminal import format_summary
from simulator.scenario.model import Scenario

__all__ = ["run_session"]

log = logging.getLogger("fleetsim.run")

SDK_COMFORT_DEVICES = 300  # simulator.transports.sdk: beyond this a thread per device saturates (PROTOCOL.md 6)


def _observer(target: Any) -> Observer | None:
    if target.kind == "embedded" and target.control_url:
        from simulator.observers.embedded import CollectorClient

        return CollectorClient(target.control_url)
    from simulator.generator.target_file import observer_for

    return observer_for(target)


def _campaign_summary(report: dict[str, Any] | None) -> dict[str, Any] | None:
    if report is None:
        return None
    return {k: v for k, v in report.items() if k != "operations"}  # per-operation rows stay out of the summary


def _campaign_metrics(scenario: Scenario, outcome: RunOutcome) -> CampaignReport:
    result = outcome.campaign_result
    return campaign_report(
        outcome.operation_records, end=outcome.ended_at, driver=result.driver if result else "none",
        max_in_progress=result.max_in_progress if result else None,
        backend=result.operations if result else None, backend_status=result.status if result else None)


def run_session(scenario: Scenario, *, scenario_path: str, overrides: dict[str, object], results_root: Path,
                state_dir: Path, processes: int = 1, spawn_rate: float = 0.0, web: bool = False,
                web_port: int = 8089, broker: str = "auto", quiet: bool = False, out: TextIO,
                until_idle_s: float = 0.0) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    ensure_open_files(-(-scenario.fleet.devices // processes))
    with open_target(scenario.target, scenario.realm, state_dir, broker=broker) as target:
        observer = _observer(target)
        if observer is not None:
            observer.start()
        locust_run = LocustRun(scenario=scenario, scenario_path=scenario_path, overrides=overrides, target=target,
                               results_root=results_root, processes=processes, spawn_rate=spawn_rate, web=web,
                               web_port=web_port, quiet=quiet, until_idle_s=until_idle_s)
        outcome = locust_run.run()
        ctx = outcome.ctx
        clock = MonotonicClock()
        health: GeneratorHealth | None = ctx.monitor.stop() if ctx.monitor is not None else None
        counters: dict[str, Any] = ctx.fleet.counters() if ctx.fleet is not None else {}
        if outcome.worker_exports:
            recorder = MetricsRecorder(clock, start=outcome.started_at)
            health = GeneratorHealth(clock)
            for export in outcome.worker_exports:
                recorder.merge(export)
                if "health" in export:
                    health.merge(export["health"])
                for key, value in dict(export.get("fleet_counters", {})).items():
                    if isinstance(value, int):
                        counters[key] = counters.get(key, 0) + value
        else:
            recorder = ctx.ensure_recorder()
        report = _campaign_metrics(scenario, outcome) if scenario.answers_requests else None
        finished = finish_run(
            scenario=scenario, plan=ctx.plan, target=target, recorder=recorder, observer=observer,
            started_at=outcome.started_at, ended_at=outcome.ended_at, results_root=results_root, health=health,
            partial=outcome.partial, reason=outcome.reason, fleet_counters=counters,
            sdk_over_limit=scenario.transport == "sdk" and scenario.fleet.devices > SDK_COMFORT_DEVICES * processes,
            extra={"processes": processes, "campaign": _campaign_summary(outcome.campaign),
                   **({"campaign_metrics": report.to_json()} if report is not None else {}),
                   **({"faults": outcome.faults} if outcome.faults is not None else {})},
            thresholds_report=thresholds_report(scenario))
        if observer is not None:
            observer.stop()
    print(format_summary(finished.summary), file=out)
    if report is not None:
        for line in campaign_lines(report):
            print(line, file=out)
    print(f"results: {finished.run_dir}", file=out)
    if outcome.partial:
        print(f"fleetsim run: {outcome.reason or 'stopped early'}; partial results written", file=out)
        return 130
    breached = [t for t in (finished.summary.get("thresholds") or {}).get("results", []) if not t.get("ok")]
    return 1 if breached else 0


def finish_locust_run(ctx: FleetContext, started_fallback: float) -> None:
    """Results of a plain `locust -f locustfile.py` run (local or master process), written when Locust quits."""
    import sys
    import time

    settings = ctx.settings
    clock = MonotonicClock()
    started = ctx.fleet.run_start_wall if ctx.fleet is not None and ctx.fleet.started.is_set() else started_fallback
    if ctx.finals:
        recorder = MetricsRecorder(clock, start=started)
        for export in ctx.finals.values():
            recorder.merge(export)
    else:
        recorder = ctx.ensure_recorder()
    observer = _observer(settings.target)
    finished = finish_run(
        scenario=settings.scenario, plan=ctx.plan, target=settings.target, recorder=recorder, observer=observer,
        started_at=started, ended_at=time.time(), results_root=settings.results_root,
        health=ctx.monitor.stop() if ctx.monitor is not None else None,
        fleet_counters=ctx.fleet.counters() if ctx.fleet is not None else {}, extra={"engine": "locust -f"},
        thresholds_report=thresholds_report(settings.scenario))
    print(format_summary(finished.summary), file=sys.stderr)
    print(f"fleetsim results: {finished.run_dir}", file=sys.stderr)
